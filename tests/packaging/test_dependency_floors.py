"""Dependency floors of the pip path exclude releases with known security advisories; the distribution
packages (.deb, .rpm) depend on the distribution's libraries without such floors."""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import Dict, List

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]

#: package -> (first release fixing every advisory known to this project, the advisory that set it)
SECURITY_FLOORS = {
    "cryptography": ("50.0.0", "GHSA-jwv3-5hgf-82ww, GHSA-g6cj-pr64-35w5; PKCS#7 crash CVE-2023-49083 in 41.0.6"),
    "requests": ("2.33.0", "CVE-2026-25645; CVE-2024-47081 in 2.32.4"),
    "urllib3": ("2.7.0", "CVE-2026-44431, CVE-2026-44432"),
}
#: on Python 3.9 (RHEL 9's python3) the newest releases that still install there
PYTHON39_FLOORS = {"requests": "2.32.5", "urllib3": "2.6.3"}


def install_requires() -> List[Requirement]:
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg", encoding="utf-8")
    lines = parser["options"]["install_requires"].splitlines()
    return [Requirement(line) for line in (raw.strip() for raw in lines) if line and not line.startswith("#")]


def floors_for(python: str) -> Dict[str, Version]:
    """Package -> the lowest version pip may install on this Python version."""
    environment = {"python_version": python, "python_full_version": f"{python}.2"}
    floors: Dict[str, Version] = {}
    for requirement in install_requires():
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        for specifier in requirement.specifier:
            if specifier.operator in (">=", "==", "~="):
                floors[requirement.name.lower()] = Version(specifier.version)
    return floors


@pytest.mark.parametrize("python", ["3.10", "3.11", "3.12", "3.13"])
@pytest.mark.parametrize("package", sorted(SECURITY_FLOORS))
def test_pip_never_installs_a_release_with_a_known_advisory(python, package):
    fixed, advisory = SECURITY_FLOORS[package]
    floor = floors_for(python).get(package)
    assert floor is not None, f"{package} must be a direct dependency with a floor (we import it)"
    assert floor >= Version(fixed), f"{package} >= {floor} allows releases affected by {advisory}"


@pytest.mark.parametrize("package", sorted(PYTHON39_FLOORS))
def test_python_3_9_gets_the_newest_releases_that_support_it(package):
    assert floors_for("3.9")[package] >= Version(PYTHON39_FLOORS[package])
    assert floors_for("3.9")["cryptography"] >= Version(SECURITY_FLOORS["cryptography"][0])


def test_the_deb_depends_on_debian_12s_own_packages_without_the_pip_floors():
    depends = (REPO / "packaging" / "deb" / "expected-depends.txt").read_text(encoding="utf-8").splitlines()
    for package in ("python3-cryptography", "python3-requests"):
        assert package in depends, f"{package}: the .deb uses the distribution's package, unversioned"


def test_the_rpm_depends_on_the_distribution_packages_without_the_pip_floors():
    spec = (REPO / "packaging" / "rpm" / "fedcloud-site.spec").read_text(encoding="utf-8")
    assert "%global __requires_exclude ^\\\\(?python[0-9.]*dist\\\\(" in spec, "generated floors would be required"
    for package in ("cryptography", "requests"):
        assert f"Requires:       python3dist({package})\n" in spec
