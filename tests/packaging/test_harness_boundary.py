"""The test harness is not the product: simulators, launchers and peer tools live in ``tests/support`` (never
shipped), the shipped demo harness (``fedcloud_site.demo``) is only what the demo needs, and neither imports
the product code it is used to check (an oracle must not share code with what it checks)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, Tuple

import setuptools

REPO = Path(__file__).resolve().parents[2]
SUPPORT = REPO / "tests" / "support" / "fedcloud_testing"
DEMO = REPO / "fedcloud_site" / "demo"


def imported_modules(path: Path, package: str) -> Iterator[Tuple[int, str]]:
    """(line, absolute module name) of every import in ``path`` (relative imports resolved in ``package``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:  # "from fedcloud_site import smime" imports a module too
                yield node.lineno, f"{module}.{alias.name}"


def _package_of(path: Path, root: Path, top: str) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    parts = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    return ".".join((top, *parts))


def _product_imports(root: Path, top: str) -> list:
    found = []
    for path in sorted(root.rglob("*.py")):
        for line, module in imported_modules(path, _package_of(path, root, top)):
            own = module == top or module.startswith(top + ".")
            if (module == "fedcloud_site" or module.startswith("fedcloud_site.")) and not own \
                    and not module.startswith("fedcloud_site.demo"):
                found.append(f"{path.relative_to(root)}:{line}: {module}")
    return found


def test_the_simulators_and_launchers_import_no_product_code():
    assert _product_imports(SUPPORT, "fedcloud_testing") == []


def test_the_shipped_demo_harness_imports_no_product_code():
    assert _product_imports(DEMO, "fedcloud_site.demo") == []


def test_the_import_check_finds_relative_absolute_and_from_imports_of_the_product(tmp_path):
    (tmp_path / "sim.py").write_text("from ..timeutil import parse_time\nimport fedcloud_site.x509\n"
                                     "from fedcloud_site import smime\nfrom fedcloud_site.demo import ca\n"
                                     "from .http import Request\n")
    found = _product_imports(tmp_path, "fedcloud_site.testing")
    assert "sim.py:1: fedcloud_site.timeutil" in found
    assert "sim.py:2: fedcloud_site.x509" in found
    assert "sim.py:3: fedcloud_site.smime" in found
    assert not [f for f in found if "demo" in f or "http" in f]


def test_the_shipped_packages_hold_no_simulator():
    shipped = setuptools.find_packages(where=str(REPO), include=["fedcloud_site", "fedcloud_site.*"])
    assert "fedcloud_site.demo" in shipped
    assert not [name for name in shipped if "testing" in name or name.startswith("fedcloud_testing")]
    demo_modules = sorted(p.stem for p in DEMO.glob("*.py"))
    assert demo_modules == ["__init__", "ams", "ca", "http", "pki"]  # the demo's needs, nothing more
