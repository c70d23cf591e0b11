"""Installing a throw-away distribution with entry points onto a directory, as pip would.

``importlib.metadata`` finds a distribution by its ``<name>-<version>.dist-info`` directory on
``sys.path``: putting the directory first on ``sys.path`` (in process) or on ``PYTHONPATH`` (in a
subprocess) installs it, with nothing of ours edited.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Mapping


def install_distribution(root: Path, name: str, modules: Mapping[str, str],
                         entry_points: Mapping[str, Dict[str, str]], version: str = "1.0") -> Path:
    """Write ``modules`` (file name -> source) and a dist-info declaring ``entry_points`` into ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for filename, source in modules.items():
        (root / filename).write_text(source, encoding="utf-8")
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    text = "".join(f"[{group}]\n" + "".join(f"{key} = {value}\n" for key, value in entries.items()) + "\n"
                   for group, entries in entry_points.items())
    (info / "entry_points.txt").write_text(text, encoding="utf-8")
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in [*modules, f"{info.name}/METADATA"]),
                                 encoding="utf-8")
    return root
