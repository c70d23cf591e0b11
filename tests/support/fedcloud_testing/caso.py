"""cASO (the accounting extractor sites run today) in its own virtualenv, run against the OpenStack simulator.

:func:`ensure_caso` installs ``caso==<version>`` from PyPI (:func:`fedcloud_testing.peers.ensure_venv`;
``FEDCLOUD_SITE_CASO_VENV`` names a directory to keep between runs).  :func:`caso_conf` fills cASO's own
``etc/caso/caso.conf.sample`` (from its sdist) with a site's values, the way an operator edits it;
:func:`run_caso` runs ``caso-extract`` up to a given instant.  Used by the migration tests and the
accounting benchmark.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

from .peers import default_venv, ensure_venv, sdist_member

CASO_VERSION = "5.2.2"
VENV_ENV = "FEDCLOUD_SITE_CASO_VENV"
_OPTION = re.compile(r"^#?\s*([A-Za-z0-9_-]+)\s*=")
_SECTION = re.compile(r"^\[([^\]]+)\]\s*$")


@dataclass
class CasoRun:
    returncode: int
    stdout: str
    stderr: str


def ensure_caso(directory: Optional[Path] = None, version: str = CASO_VERSION) -> Path:
    """``caso-extract`` of a virtualenv with ``caso==version`` (installed on first use)."""
    venv = directory or default_venv(f"caso-{version}", VENV_ENV)
    python = ensure_venv(venv, f"caso=={version}")
    return python.parent / "caso-extract"


def sample_conf(version: str = CASO_VERSION) -> str:
    """cASO's shipped ``etc/caso/caso.conf.sample``."""
    return sdist_member("caso", version, "etc/caso/caso.conf.sample").read_text(encoding="utf-8")


def fill_sample(sample: str, values: Mapping[Tuple[str, str], str]) -> str:
    """``sample`` with each ``(section, option)`` set: its commented default line replaced in place, or
    the option added at the end of its section (sections added at the end when missing)."""
    lines = sample.splitlines()
    pending: Dict[Tuple[str, str], str] = dict(values)
    out: List[str] = []
    section: Optional[str] = None

    def flush(current: Optional[str]) -> None:
        for key in [k for k in pending if k[0] == current]:
            out.append(f"{key[1]} = {pending.pop(key)}")

    for line in lines:
        match = _SECTION.match(line)
        if match:
            flush(section)
            section = match.group(1)
            out.append(line)
            continue
        option = _OPTION.match(line)
        if option and section is not None and (section, option.group(1)) in pending:
            out.append(f"{option.group(1)} = {pending.pop((section, option.group(1)))}")
            continue
        out.append(line)
    flush(section)
    for name in sorted({k[0] for k in pending}):
        out.append(f"\n[{name}]")
        flush(name)
    return "\n".join(out) + "\n"


def caso_conf(path: Path, site_name: str, auth_url: str, username: str, password: str, projects: List[str],
              spooldir: Path, output_path: Path, extra: Optional[Mapping[Tuple[str, str], str]] = None) -> Path:
    """cASO's sample configuration filled for a site: nova extractor, ssm messenger into ``output_path``."""
    values: Dict[Tuple[str, str], str] = {
        ("DEFAULT", "site_name"): site_name, ("DEFAULT", "projects"): ",".join(projects),
        ("DEFAULT", "extractor"): "nova", ("DEFAULT", "messengers"): "ssm",
        ("DEFAULT", "spooldir"): str(spooldir), ("DEFAULT", "lock_path"): str(spooldir),
        ("keystone_auth", "auth_type"): "password", ("keystone_auth", "auth_url"): auth_url,
        ("keystone_auth", "username"): username, ("keystone_auth", "password"): password,
        ("keystone_auth", "user_domain_name"): "Default", ("keystone_auth", "project_domain_name"): "Default",
        ("ssm", "output_path"): str(output_path),
    }
    values.update(extra or {})
    path.write_text(fill_sample(sample_conf(), values), encoding="utf-8")
    return path


def run_caso(exe: Path, conf: Path, extract_to: datetime, workdir: Path, timeout: float = 600) -> CasoRun:
    """``caso-extract --config-file conf --extract-to <extract_to>`` (only 127.0.0.1 is reachable by design:
    the configuration names the simulator)."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir), "LANG": "C.UTF-8",
           "NO_PROXY": "*", "no_proxy": "*", "CASO_LOCK_PATH": str(workdir)}
    when = extract_to.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S+00:00")
    result = subprocess.run([str(exe), "--config-file", str(conf), "--extract-to", when], capture_output=True,
                            text=True, timeout=timeout, env=env, cwd=str(workdir))
    return CasoRun(result.returncode, result.stdout, result.stderr)
