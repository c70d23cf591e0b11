"""Packaging sources agree with each other and with the code (fast checks; packaging/ci-check.sh builds them).

systemd-analyze (Debian ``systemd``) is used when present for the offline security score.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fedcloud_site import __version__, cli
from fedcloud_site.registry import daemon_names

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "systemd"
EXAMPLE = REPO / "etc" / "fedcloud-site" / "fedcloud-site.yaml"
CHECKER = REPO / "packaging" / "check-package-files.py"


def _unit(name: str) -> dict:
    """The unit's settings: key -> list of values (repeated keys kept)."""
    values: dict = {}
    for line in (UNITS / name).read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def test_spec_and_debian_changelog_carry_the_package_version():
    spec = (REPO / "packaging" / "rpm" / "fedcloud-site.spec").read_text(encoding="utf-8")
    assert re.search(r"^Version:\s+(\S+)$", spec, re.M).group(1) == __version__
    changelog = (REPO / "packaging" / "deb" / "debian" / "changelog").read_text(encoding="utf-8")
    assert re.match(rf"fedcloud-site \({re.escape(__version__)}-\d+\) ", changelog)


def test_example_configuration_passes_check_config(capsys):
    assert cli.main(["--config", str(EXAMPLE), "check-config"]) == 0
    assert "# configuration OK" in capsys.readouterr().out


def test_example_configuration_has_a_section_for_every_daemon():
    sections = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert set(daemon_names()) <= set(sections)


@pytest.mark.parametrize("daemon", daemon_names())
def test_every_daemon_has_a_hardened_notify_unit(daemon):
    unit = _unit(f"fedcloud-site-{daemon}.service")
    assert unit["Type"] == ["notify"] and unit["NotifyAccess"] == ["main"]
    assert unit["ExecStart"] == [f"/usr/bin/fedcloud-site {daemon} run"]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["User"] == ["fedcloud"] and unit["Restart"] == ["on-failure"]
    assert unit["ProtectSystem"] == ["strict"] and unit["CapabilityBoundingSet"] == [""]
    assert unit["StateDirectory"] == [f"fedcloud-site/{daemon}"]
    assert "@system-service" in unit["SystemCallFilter"]
    assert unit["WantedBy"] == ["fedcloud-site.target"] and unit["PartOf"] == ["fedcloud-site.target"]


def test_queue_daemons_may_write_the_apel_spool_and_others_may_not():
    for daemon in daemon_names():
        writes = " ".join(_unit(f"fedcloud-site-{daemon}.service").get("ReadWritePaths", []))
        assert ("/var/spool/apel/outgoing" in writes) == (daemon in ("accounting", "ssm")), daemon


def test_packages_install_every_unit_of_the_source_tree():
    units = sorted(p.name for p in UNITS.iterdir())
    expected_rpm = (REPO / "packaging" / "rpm" / "expected-files.txt").read_text(encoding="utf-8")
    expected_deb = (REPO / "packaging" / "deb" / "expected-files.txt").read_text(encoding="utf-8")
    install = (REPO / "packaging" / "deb" / "debian" / "install").read_text(encoding="utf-8")
    for unit in units:
        assert f"/usr/lib/systemd/system/{unit}" in expected_rpm
        assert f"/lib/systemd/system/{unit}" in expected_deb
        assert f"systemd/{unit} lib/systemd/system/" in install


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze (Debian systemd)")
@pytest.mark.parametrize("daemon", daemon_names())
def test_unit_exposure_is_ok(daemon):
    result = subprocess.run(["systemd-analyze", "security", "--offline=true",
                             str(UNITS / f"fedcloud-site-{daemon}.service")],
                            capture_output=True, text=True, timeout=60)
    score = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout + result.stderr)
    assert score, result.stdout + result.stderr
    assert float(score.group(1)) <= 4.0


def _check(expected: str, listing: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    (tmp_path / "expected.txt").write_text(expected, encoding="utf-8")
    return subprocess.run([sys.executable, str(CHECKER), str(tmp_path / "expected.txt"), *extra],
                          input=listing, capture_output=True, text=True, timeout=60)


def test_file_list_check_reports_missing_and_unexpected_entries(tmp_path):
    result = _check("/usr/bin/a\n/etc/{name}.conf\n", "/usr/bin/a\n/usr/bin/stray\n", tmp_path,
                    "--var", "name=x")
    assert result.returncode == 1
    assert "MISSING    /etc/x.conf" in result.stdout and "UNEXPECTED /usr/bin/stray" in result.stdout


def test_file_list_check_accepts_patterns_and_ignores_bytecode(tmp_path):
    listing = "/usr/share/man/man1/a.1.gz\n/x/__pycache__/m.cpython-311.pyc\nrpmlib(Foo) <= 1\n"
    result = _check("/usr/share/man/man1/a.1*\n", listing, tmp_path)
    assert result.returncode == 0, result.stdout


def test_file_list_check_expands_the_package_from_the_source_tree(tmp_path):
    source = tmp_path / "src"
    (source / "fedcloud_site" / "sub").mkdir(parents=True)
    for name in ("fedcloud_site/__init__.py", "fedcloud_site/sub/__init__.py", "fedcloud_site/sub/data.yaml"):
        (source / name).write_text("", encoding="utf-8")
    listing = "/lib/fedcloud_site\n/lib/fedcloud_site/__init__.py\n/lib/fedcloud_site/sub\n"
    result = _check("@package /lib\n", listing, tmp_path, "--source", str(source))
    assert result.returncode == 1
    assert "MISSING    /lib/fedcloud_site/sub/__init__.py" in result.stdout
    assert "MISSING    /lib/fedcloud_site/sub/data.yaml" in result.stdout


def test_dpkg_listing_is_understood(tmp_path):
    listing = ("drwxr-xr-x root/root         0 2026-01-01 00:00 ./\n"
               "drwxr-xr-x root/root         0 2026-01-01 00:00 ./usr/\n"
               "-rwxr-xr-x root/root       300 2026-01-01 00:00 ./usr/fedcloud-site\n"
               "lrwxrwxrwx root/root         0 2026-01-01 00:00 ./usr/alias -> fedcloud-site\n")
    result = _check("/usr\n/usr/fedcloud-site\n/usr/alias\n", listing, tmp_path, "--dpkg")
    assert result.returncode == 0, result.stdout
