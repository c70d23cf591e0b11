"""The command line: ``accounting once`` on the demo site, ``republish``, ``status``; TZ independence."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from accounting_support import GOLDEN_DIR
from apel_loader import parse_message, read_queue

from fedcloud_site.cli import main

REPO = Path(__file__).resolve().parents[2]


def fedcloud_site(*args: str, env: dict = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fedcloud_site.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env, cwd=str(REPO))


@pytest.fixture
def demo(tmp_path):
    """A copy of etc/fedcloud-site (demo configuration and site) whose output goes to tmp_path/demo-output."""
    etc = tmp_path / "etc" / "fedcloud-site"
    shutil.copytree(REPO / "etc" / "fedcloud-site", etc)
    return etc / "demo.yaml", tmp_path / "demo-output"


def test_accounting_once_works_on_the_demo_site(demo):
    config, output = demo
    result = fedcloud_site("--config", str(config), "accounting", "once")
    assert result.returncode == 0, result.stderr
    messages = read_queue(output / "outgoing")
    kinds = [parse_message(m).kind for m in messages]
    assert "cloud" in kinds
    records = [r for m in messages for r in parse_message(m).records if parse_message(m).kind == "cloud"]
    assert {r["FQAN"] for r in records} == {"fedcloud.egi.eu", "biomed"}
    assert all(parse_message(m).kind == "storage" for m in read_queue(output / "outgoing-storage"))
    assert "run summary" in result.stderr and "status='ok'" in result.stderr
    state = sorted(p.name for p in (output / "accounting" / "projects").glob("*.json"))
    assert len(state) == 2
    again = fedcloud_site("--config", str(config), "accounting", "once")
    assert again.returncode == 0, again.stderr


def test_republish_dry_run_prints_past_months_and_touches_nothing(demo, capsys):
    config, output = demo
    status = main(["--config", str(config), "accounting", "republish", "--from", "2026-10", "--to", "2026-10",
                   "--dry-run", "--project", "fedcloud"])
    printed = capsys.readouterr().out
    assert status == 0
    assert printed.startswith("# message 1: cloud")
    assert "RecordCreateTime: 1793491199" in printed  # 2026-10-31T23:59:59Z
    assert "VMUUID: 6d2b8f4e-1a3c-4e5f-8b7d-9c1e3a5f7b9d" in printed
    assert "biomed" not in printed
    assert not (output / "outgoing").exists() and not (output / "accounting" / "projects").exists()


def test_republish_queues_records_without_moving_the_state(demo):
    config, output = demo
    assert main(["--config", str(config), "accounting", "once"]) == 0
    states = {p.name: p.read_text() for p in (output / "accounting" / "projects").glob("*.json")}
    before = len(read_queue(output / "outgoing"))
    assert main(["--config", str(config), "accounting", "republish", "--from", "2026-10", "--to", "2026-11"]) == 0
    assert len(read_queue(output / "outgoing")) > before
    assert {p.name: p.read_text() for p in (output / "accounting" / "projects").glob("*.json")} == states


@pytest.mark.parametrize("args", [["--from", "2026-11", "--to", "2026-10"], ["--from", "2099-01", "--to", "2099-02"]])
def test_republish_refuses_an_impossible_period(demo, args):
    config, _ = demo
    assert main(["--config", str(config), "accounting", "republish", *args]) == 2


def test_republish_rejects_a_malformed_month(demo, capsys):
    config, _ = demo
    with pytest.raises(SystemExit) as info:
        main(["--config", str(config), "accounting", "republish", "--from", "2026-13", "--to", "2026-12"])
    assert info.value.code == 2
    assert "YYYY-MM" in capsys.readouterr().err


def test_status_shows_each_project_and_the_queue(demo, capsys):
    config, _ = demo
    assert main(["--config", str(config), "accounting", "once"]) == 0
    capsys.readouterr()
    assert main(["--config", str(config), "accounting", "status", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {p["vo"] for p in report["projects"]} == {"fedcloud.egi.eu", "biomed"}
    assert report["queues"]["queue"]["messages"] > 0


def test_once_can_extract_a_single_project(demo):
    config, output = demo
    assert main(["--config", str(config), "accounting", "once", "--project", "biomed-cloud"]) == 0
    assert [p.stem for p in (output / "accounting" / "projects").glob("*.json")] == [
        "7c9e2b4a6d8f4a1c9e3b5d7f9a2c4e6b"]


TZ_SCRIPT = """
import sys, yaml
from fedcloud_site.log import configure_logging
configure_logging()  # logs to stderr
sys.path.insert(0, sys.argv[1])
from accounting_support import AccountingSite, GOLDEN_SITE
from pathlib import Path
site = AccountingSite(Path(sys.argv[2]), yaml.safe_load(GOLDEN_SITE.read_text(encoding="utf-8")))
sys.stdout.write(site.dry_run("2026-11-20T10:00:00Z"))
"""


@pytest.mark.parametrize("tz", ["UTC", "America/St_Johns", "Asia/Kathmandu", "Pacific/Kiritimati"])
def test_the_same_bytes_under_any_host_timezone(tmp_path, tz):
    env = dict(os.environ, TZ=tz)
    result = subprocess.run([sys.executable, "-c", TZ_SCRIPT, str(Path(__file__).parent), str(tmp_path / "site")],
                            capture_output=True, env=env, timeout=120, cwd=str(REPO))
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode("ascii") == (GOLDEN_DIR / "static-2026-11-20.txt").read_text(encoding="ascii")
