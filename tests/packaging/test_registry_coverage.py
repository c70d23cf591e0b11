"""Every registered daemon is complete everywhere it must appear outside its package.

The daemon registry (entry-point group ``fedcloud_site.daemons``) is the list of daemons; this test
enumerates it and checks each daemon's unit, console script, probe, CLI, packaging entries (RPM spec and
file list, Debian install/links/docs and file list), operator guide and example configuration, so adding a
daemon and forgetting one of these places fails here, naming the place.
"""

from __future__ import annotations

import argparse
import configparser
import dataclasses
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fedcloud_site import cli
from fedcloud_site.registry import ENTRY_POINT_GROUP, DaemonSpec, daemon_names, daemon_specs
from fedcloud_site.settings import DaemonSettings

REPO = Path(__file__).resolve().parents[2]
SPECS = daemon_specs()
NAMES = [spec.name for spec in SPECS]
SPEC_FILE = (REPO / "packaging" / "rpm" / "fedcloud-site.spec").read_text(encoding="utf-8")
DEBIAN = REPO / "packaging" / "deb" / "debian"


def _text(*parts: str) -> str:
    return REPO.joinpath(*parts).read_text(encoding="utf-8")


def _setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg", encoding="utf-8")
    return parser


def _entries(option: str) -> dict:
    lines = [line.strip() for line in _setup_cfg()["options.entry_points"][option].splitlines() if line.strip()]
    return dict(tuple(part.strip() for part in line.split("=", 1)) for line in lines)


def test_the_registry_holds_the_five_daemons_in_run_order():
    assert NAMES == ["accounting", "ssm", "cloudinfo", "images", "perun"]
    assert daemon_names() == NAMES
    assert len({spec.order for spec in SPECS}) == len(SPECS)


def test_setup_cfg_registers_exactly_the_daemon_packages_of_the_source_tree():
    registered = _entries(ENTRY_POINT_GROUP)
    packages = sorted(p.parent.name for p in (REPO / "fedcloud_site").glob("*/spec.py"))
    assert sorted(registered) == packages
    assert all(target == f"fedcloud_site.{name}.spec:SPEC" for name, target in registered.items())


@pytest.mark.parametrize("spec", SPECS, ids=NAMES)
def test_the_spec_resolves_to_real_settings_jobs_cli_and_probe(spec: DaemonSpec):
    assert issubclass(spec.settings, DaemonSettings) and dataclasses.is_dataclass(spec.settings)
    module_name, _, function = spec.jobs.partition(":")
    assert callable(getattr(importlib.import_module(module_name), function))
    assert spec.cli is not None and callable(importlib.import_module(spec.cli).add_commands)
    assert spec.probe is not None
    probe = importlib.import_module(spec.probe)
    assert probe.NAME and probe.HELP and callable(probe.run) and callable(probe.add_arguments)


@pytest.mark.parametrize("spec", SPECS, ids=NAMES)
def test_the_command_line_offers_the_daemon_and_its_probe(spec: DaemonSpec):
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert spec.name in commands.choices
    actions = next(a for a in commands.choices[spec.name]._actions if isinstance(a, argparse._SubParsersAction))
    assert {"run", "once"} <= set(actions.choices)
    probes = next(a for a in commands.choices["check"]._actions if isinstance(a, argparse._SubParsersAction))
    assert importlib.import_module(spec.probe).NAME in probes.choices


@pytest.mark.parametrize("spec", SPECS, ids=NAMES)
def test_the_daemon_has_its_console_script(spec: DaemonSpec):
    assert _entries("console_scripts")[f"fedcloud-site-{spec.name}"] == "fedcloud_site.cli:daemon_entry"


@pytest.mark.parametrize("spec", SPECS, ids=NAMES)
def test_the_daemon_has_its_systemd_unit(spec: DaemonSpec):
    unit = _text("systemd", f"fedcloud-site-{spec.name}.service")
    assert f"ExecStart=/usr/bin/fedcloud-site {spec.name} run\n" in unit
    assert f"StateDirectory=fedcloud-site/{spec.name}\n" in unit


def test_no_unit_without_a_daemon():
    units = {p.name for p in (REPO / "systemd").glob("fedcloud-site-*.service")}
    assert units == {f"fedcloud-site-{name}.service" for name in NAMES}


def test_the_rpm_spec_lists_every_daemon():
    daemons = re.search(r"^%global daemons (.+)$", SPEC_FILE, re.M).group(1).split()
    units = re.search(r"^%global units (.+)$", SPEC_FILE, re.M).group(1).split()
    assert daemons == NAMES
    assert units == [f"fedcloud-site-{name}.service" for name in NAMES] + ["fedcloud-site.target"]


@pytest.mark.parametrize("spec", SPECS, ids=NAMES)
def test_the_rpm_installs_the_daemons_files(spec: DaemonSpec):
    name = spec.name
    assert f"%{{_bindir}}/fedcloud-site-{name}\n" in SPEC_FILE
    assert re.search(rf"^%doc .*\bdocs/{name}\.rst\b", SPEC_FILE, re.M)
    expected = _text("packaging", "rpm", "expected-files.txt").splitlines()
    for path in (f"/usr/bin/fedcloud-site-{name}", f"/usr/lib/systemd/system/fedcloud-site-{name}.service",
                 f"/usr/share/man/man1/fedcloud-site-{name}.1*",
                 f"/usr/share/doc/fedcloud-site-{{version}}/{name}.rst"):
        assert path in expected, f"packaging/rpm/expected-files.txt: {path}"


@pytest.mark.parametrize("spec", SPECS, ids=NAMES)
def test_the_deb_installs_the_daemons_files(spec: DaemonSpec):
    name = spec.name
    install = (DEBIAN / "install").read_text(encoding="utf-8").splitlines()
    assert f"systemd/fedcloud-site-{name}.service lib/systemd/system/" in install
    links = (DEBIAN / "links").read_text(encoding="utf-8").splitlines()
    assert f"usr/share/man/man1/fedcloud-site.1.gz usr/share/man/man1/fedcloud-site-{name}.1.gz" in links
    assert f"docs/{name}.rst" in (DEBIAN / "docs").read_text(encoding="utf-8").splitlines()
    expected = _text("packaging", "deb", "expected-files.txt").splitlines()
    for path in (f"/usr/bin/fedcloud-site-{name}", f"/lib/systemd/system/fedcloud-site-{name}.service",
                 f"/usr/share/man/man1/fedcloud-site-{name}.1.gz", f"/usr/share/doc/fedcloud-site/{name}.rst"):
        assert path in expected, f"packaging/deb/expected-files.txt: {path}"


@pytest.mark.parametrize("spec", SPECS, ids=NAMES)
def test_the_daemon_has_its_guide_and_example_sections(spec: DaemonSpec):
    assert (REPO / "docs" / f"{spec.name}.rst").is_file()
    assert f"docs/{spec.name}.rst" in _text("README.rst")
    example = yaml.safe_load(_text("etc", "fedcloud-site", "fedcloud-site.yaml"))
    demo = yaml.safe_load(_text("etc", "fedcloud-site", "demo.yaml"))
    assert spec.name in example, "etc/fedcloud-site/fedcloud-site.yaml"
    assert spec.name in demo, "etc/fedcloud-site/demo.yaml"


def test_the_demo_and_the_package_check_take_the_daemons_from_the_registry():
    for script in ("scripts/demo.sh", "packaging/ci-check.sh"):
        text = _text(script)
        assert "fedcloud-site daemons" in text, script
        assert not re.search(r"accounting\s+ssm\s+cloudinfo", text), f"{script} lists the daemons itself"


def test_the_daemons_command_prints_the_registry():
    result = subprocess.run([sys.executable, "-m", "fedcloud_site.cli", "daemons"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == NAMES


def test_the_core_imports_no_daemon_by_name():
    daemon_words = "|".join(NAMES)
    for core in ("config.py", "cli.py", "runner.py", "registry.py", "settings.py", "schema.py", "plugins.py",
                 "probes/cli.py"):
        text = _text("fedcloud_site", core)
        assert not re.search(rf"^\s*(from|import)\s+\S*\b({daemon_words})\b", text, re.M), core
        assert not re.search(rf"[\"']({daemon_words})[\"']", text), core
