"""Faults: full disk, process killed between enqueue and state write, malformed cloud data, bad state
files, unmapped projects, shutdown.  Nothing is lost, nothing is counted twice, the rest goes on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from apel_loader import CloudDB, parse_message
from structlog.testing import capture_logs

from fedcloud_site.accounting.daemon import run_extraction
from fedcloud_site.cloud import open_backend
from fedcloud_site.errors import JobIncomplete
from fedcloud_site.log import get_logger
from fedcloud_site.timeutil import parse_time

PROJECT_A = "0f5d2c1a8b9e4d7c6a5b4c3d2e1f0a9b"
PROJECT_B = "9a8b7c6d5e4f4a3b2c1d0e9f8a7b6c5d"

# Runs one extraction in a child process: argv = config, now, file size limit in bytes (0: none).
HARNESS = """
import json, resource, sys
limit = int(sys.argv[3])
if limit:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from fedcloud_site.accounting.daemon import run_extraction
from fedcloud_site.cloud import open_backend
from fedcloud_site.config import load_config
from fedcloud_site.log import get_logger
from fedcloud_site.errors import JobIncomplete
from fedcloud_site.timeutil import parse_time
config = load_config(sys.argv[1])
try:
    summary = run_extraction(config, open_backend(config), parse_time(sys.argv[2]), get_logger("accounting"))
except JobIncomplete as exc:
    print("INCOMPLETE " + json.dumps({"reason": str(exc), **exc.summary}), flush=True)
    sys.exit(1)
print("OK " + json.dumps(summary), flush=True)
"""


def big_site(n_vms: int) -> dict:
    vms = [{"id": f"{i:08x}-0000-4000-8000-{i:012x}", "name": f"vm-{i}", "project": PROJECT_A, "user": f"u{i % 7}",
            "status": "running" if i % 5 else "deleted", "created": "2026-10-05T00:00:00Z",
            "ended": None if i % 5 else "2026-11-01T12:00:00Z", "flavor": "m1"} for i in range(n_vms)]
    vms += [{"id": f"{i:08x}-1111-4000-8000-{i:012x}", "name": f"b-{i}", "project": PROJECT_B, "user": "ub",
             "status": "running", "created": "2026-10-20T00:00:00Z", "flavor": "m1"} for i in range(5)]
    return {"projects": [{"id": PROJECT_A, "name": "fedcloud"},
                         {"id": PROJECT_B, "name": "bio", "properties": {"egi.VO": "biomed"}}],
            "flavors": [{"id": "m1", "name": "m1", "vcpus": 1, "ram": 2048, "disk": 20}], "vms": vms}


#: both ways of listing VMs: one listing per project, and one listing of all projects dispatched to each
LISTINGS = pytest.mark.parametrize("listing", ["per_project", "all_projects"])


def json_site(make_site, data: dict, name: str, listing: str = "auto"):
    return make_site(data, {"accounting": {"record_types": ["cloud"], "max_records_per_message": 25,
                                           "vm_listing": listing}}, name=name, site_format="json")


def harness(site, now: str, limit: int = 0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HARNESS, str(site.config_file), now, str(limit)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def state_file(site, project: str = PROJECT_A) -> Path:
    return site.state_dir / "projects" / f"{project}.json"


def load_all(site) -> CloudDB:
    db = CloudDB()
    for message in site.messages():
        db.load_message(message)
    return db


@LISTINGS
def test_a_full_disk_stops_the_run_without_losing_anything(make_site, listing):
    data = big_site(300)
    site = json_site(make_site, data, "full", listing)
    child = harness(site, "2026-11-20T00:00:00Z", limit=2048)  # every message is larger than 2 KiB
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 1, out
    assert "INCOMPLETE" in out and "cannot add a message" in out and str(site.queue_dir) in out
    assert site.messages() == []
    assert not state_file(site).exists() and not state_file(site, PROJECT_B).exists()
    # space again: the next run sends exactly what a run that never failed sends
    site.run("2026-11-20T00:00:00Z")
    clean = json_site(make_site, data, "clean", listing)
    clean.run("2026-11-20T00:00:00Z")
    assert site.messages() == clean.messages()


@LISTINGS
def test_killed_between_enqueue_and_state_write_nothing_is_lost_or_counted_twice(make_site, listing):
    data = big_site(3000)
    site = json_site(make_site, data, "killed", listing)
    child = harness(site, "2026-11-20T00:00:00Z")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and child.poll() is None:
        if site.queue_dir.is_dir() and any(p.is_file() for d in site.queue_dir.iterdir() if d.is_dir()
                                           for p in d.iterdir() if not p.name.endswith(".tmp")):
            break
        time.sleep(0.001)
    os.kill(child.pid, signal.SIGKILL)
    child.communicate(timeout=30)
    sent_before_kill = len(site.messages())
    assert sent_before_kill >= 1, "the child was killed before it queued anything"
    assert not state_file(site).exists(), "the child finished before it could be killed"
    assert not state_file(site, PROJECT_B).exists()
    # the next run (later) sends the window again; the APEL server's per-VM-month rule absorbs the re-send
    site.run("2026-11-21T00:00:00Z")
    assert json.loads(state_file(site).read_text())["extracted_to"] == "2026-11-21T00:00:00Z"
    clean = json_site(make_site, data, "clean", listing)
    clean.run("2026-11-21T00:00:00Z")
    recovered, reference = load_all(site), load_all(clean)
    assert recovered.rows == reference.rows
    assert recovered.monthly_usage() == reference.monthly_usage()
    assert len(reference.rows) == 3000 * 2 + 5 * 2  # an October and a November record per VM
    assert len(site.messages()) > len(clean.messages())  # the re-send happened and was harmless


@LISTINGS
def test_malformed_vms_are_logged_by_id_and_the_others_still_sent(make_site, listing):
    good = {"id": "aaaaaaaa-0000-4000-8000-000000000001", "name": "good", "project": PROJECT_A, "user": "u",
            "status": "running", "created": "2026-11-01T00:00:00Z", "flavor": "m1"}
    bad = [
        dict(good, id="bad-date", created="the day before yesterday"),
        {k: v for k, v in dict(good, id="no-created").items() if k != "created"},
        dict(good, id="bad-status", status="exploded"),
        dict(good, id="deleted-no-end", status="deleted"),
        dict(good, id="ends-before-start", status="deleted", ended="2026-10-01T00:00:00Z"),
    ]
    data = big_site(0)
    data["vms"] = [bad[0], bad[1], good, bad[2], bad[3], bad[4]]
    site = make_site(data, {"accounting": {"record_types": ["cloud"], "vm_listing": listing}})
    with capture_logs() as logs, pytest.raises(JobIncomplete) as info:
        site.run("2026-11-20T00:00:00Z")
    assert info.value.summary["vm_listing"] == listing
    errors = [entry["error"] for entry in logs if entry["log_level"] == "error"]
    for vm_id in ("bad-date", "no-created", "bad-status", "deleted-no-end", "ends-before-start"):
        assert sum(vm_id in error for error in errors) == 1, (vm_id, errors)
    assert info.value.summary["bad_vms"] == 5
    sent = [r["VMUUID"] for m in site.messages() for r in parse_message(m).records]
    assert sent == [good["id"]]
    # the good VMs' window is done; the bad ones are counted by their next good record (cumulative)
    assert state_file(site).exists()
    data["vms"] = [dict(good, id="bbbbbbbb-0000-4000-8000-000000000002", created="2026-11-02T00:00:00Z"), good]
    site.write_site(data)
    site.run("2026-11-22T00:00:00Z")
    db = load_all(site)
    assert db.latest(good["id"])["WallDuration"] == 21 * 86400


@pytest.mark.parametrize("listing", ["auto", "all_projects"])
def test_an_unreadable_state_file_skips_only_its_project(make_site, listing):
    site = make_site(big_site(3), {"accounting": {"record_types": ["cloud"], "vm_listing": listing}})
    state_file(site).parent.mkdir(parents=True)
    state_file(site).write_text("{not json")
    with capture_logs() as logs, pytest.raises(JobIncomplete) as info:
        site.run("2026-11-20T00:00:00Z")
    assert str(state_file(site)) in str(info.value)
    assert any(str(state_file(site)) in entry.get("error", "") for entry in logs)
    assert state_file(site).read_text() == "{not json"  # never overwritten
    assert {r["LocalGroupId"] for m in site.messages() for r in parse_message(m).records} == {PROJECT_B}


def test_a_project_without_vo_is_an_error_and_the_others_are_extracted(make_site):
    data = big_site(2)
    data["projects"].append({"id": "cccccccc", "name": "orphan"})
    site = make_site(data, {"accounting": {"record_types": ["cloud"]}})
    with pytest.raises(JobIncomplete, match="cccccccc .orphan. maps to no VO") as info:
        site.run("2026-11-20T00:00:00Z")
    assert info.value.summary["projects"] == 2 and info.value.summary["projects_failed"] == 1
    assert state_file(site).exists() and state_file(site, PROJECT_B).exists()


def test_a_selected_project_that_does_not_exist_is_named(make_site):
    site = make_site(big_site(2), {"accounting": {"record_types": ["cloud"], "projects": ["fedcloud", "ghost"]}})
    with pytest.raises(JobIncomplete, match="'ghost'"):
        site.run("2026-11-20T00:00:00Z")
    assert state_file(site).exists() and not state_file(site, PROJECT_B).exists()


@LISTINGS
def test_a_shutdown_abandons_the_project_without_advancing_its_state(make_site, listing):
    site = make_site(big_site(50), {"accounting": {"record_types": ["cloud"], "max_records_per_message": 10,
                                                   "vm_listing": listing}})
    config = site.config
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 25

    with pytest.raises(JobIncomplete, match="stopped"):
        run_extraction(config, open_backend(config), parse_time("2026-11-20T00:00:00Z"), get_logger("accounting"),
                       stop=stop)
    assert not state_file(site).exists() and not state_file(site, PROJECT_B).exists()
    assert len(site.messages()) >= 1  # already queued messages stay; they are re-sent harmlessly next run


@LISTINGS
def test_an_unreadable_floating_ip_costs_only_the_ip_records(make_site, listing):
    data = big_site(3)
    data["floating_ips"] = [{"id": "fip-bad", "address": "192.0.2.9", "version": 4, "project": PROJECT_A,
                             "created": "sometime"}]
    site = make_site(data, {"accounting": {"record_types": ["cloud", "ip"], "vm_listing": listing}})
    with capture_logs() as logs, pytest.raises(JobIncomplete, match="IP records of project"):
        site.run("2026-11-20T00:00:00Z")
    assert any("floating_ips[0]" in entry.get("error", "") for entry in logs)
    assert [parse_message(m).kind for m in site.messages()] == ["cloud", "cloud"]
    assert site.messages(kind="ip") == []
