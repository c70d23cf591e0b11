"""A VM's life over successive runs: status and cumulative durations right in each run, one record
per VM and month, state advanced to each run's end."""

from __future__ import annotations

import copy
import json

from apel_loader import CloudDB, parse_message

from fedcloud_site.timeutil import parse_time, to_epoch

DAY = 86400
VM_ID = "11111111-2222-4333-8444-555555555555"
PROJECT = "0f5d2c1a8b9e4d7c6a5b4c3d2e1f0a9b"

SITE = {
    "projects": [{"id": PROJECT, "name": "fedcloud"}],
    "flavors": [{"id": "m1", "name": "m1", "vcpus": 2, "ram": 4096, "disk": 40}],
    "vms": [{"id": VM_ID, "name": "life", "project": PROJECT, "user": "u1", "status": "running",
             "created": "2026-10-10T00:00:00Z", "flavor": "m1"}],
}


def records_of(site, since: int):
    """Cloud records of the VM in the messages added since the ``since``-th message."""
    out = []
    for message in site.messages()[since:]:
        parsed = parse_message(message)
        if parsed.kind == "cloud":
            out += [r for r in parsed.records if r["VMUUID"] == VM_ID]
    return out


def change_vm(site, **fields):
    data = copy.deepcopy(site.site_data)
    data["vms"][0].update(fields)
    site.write_site(data)


def test_created_running_across_a_month_suspended_resumed_deleted(make_site):
    site = make_site(SITE, {"accounting": {"record_types": ["cloud"]}})
    seen = 0
    runs = []

    def run(now):
        nonlocal seen
        site.run(now)
        new = records_of(site, seen)
        seen = len(site.messages())
        runs.append(new)
        state = json.loads((site.state_dir / "projects" / f"{PROJECT}.json").read_text())
        assert state["extracted_to"] == now
        return [(r["Status"], r["WallDuration"], r.get("SuspendDuration"), r.get("EndTime")) for r in new]

    # created Oct 10, running
    assert run("2026-10-20T12:00:00Z") == [("started", 10 * DAY + 43200, None, None)]
    # across the month boundary: a record for the last second of October, then one for now
    assert run("2026-11-05T00:00:00Z") == [("started", 22 * DAY - 1, None, None), ("started", 26 * DAY, None, None)]
    # suspended on Nov 6: four days suspended by Nov 10
    change_vm(site, status="suspended", suspended_seconds=4 * DAY)
    assert run("2026-11-10T00:00:00Z") == [("suspended", 27 * DAY, 4 * DAY, None)]
    # resumed on Nov 12 after six days suspended
    change_vm(site, status="running", suspended_seconds=6 * DAY)
    assert run("2026-11-15T00:00:00Z") == [("started", 30 * DAY, 6 * DAY, None)]
    # deleted on Nov 18
    change_vm(site, status="deleted", ended="2026-11-18T00:00:00Z", suspended_seconds=6 * DAY)
    end = to_epoch(parse_time("2026-11-18T00:00:00Z"))
    assert run("2026-11-20T00:00:00Z") == [("completed", 33 * DAY, 6 * DAY, end)]
    # gone: no more records
    assert run("2026-12-03T00:00:00Z") == []

    db = CloudDB()
    for message in site.messages():
        db.load_message(message)
    usage = db.monthly_usage()
    assert usage[(VM_ID, 2026, 10)] == 22 * DAY - 1
    assert usage[(VM_ID, 2026, 11)] == 33 * DAY - (22 * DAY - 1)
    assert sum(v for k, v in usage.items() if k[0] == VM_ID) == 33 * DAY
    cpu = db.monthly_usage("CpuDuration")
    assert cpu[(VM_ID, 2026, 10)] + cpu[(VM_ID, 2026, 11)] == 2 * 33 * DAY
    assert db.latest(VM_ID)["Status"] == "completed"


def test_a_run_at_the_same_instant_sends_nothing_new(make_site):
    site = make_site(SITE)
    site.run("2026-10-20T00:00:00Z")
    before = len(site.messages())
    summary = site.run("2026-10-20T00:00:00Z")
    assert len(site.messages()) == before
    assert summary["projects_up_to_date"] == 1


def test_an_outage_of_several_months_is_caught_up_month_by_month(make_site):
    site = make_site(SITE, {"accounting": {"record_types": ["cloud"]}})
    site.run("2026-10-20T00:00:00Z")
    site.run("2027-02-10T00:00:00Z")
    db = CloudDB()
    for message in site.messages():
        db.load_message(message)
    months = sorted((y, m) for vm, y, m in db.rows if vm == VM_ID)
    assert months == [(2026, 10), (2026, 11), (2026, 12), (2027, 1), (2027, 2)]
    usage = db.monthly_usage()
    assert usage[(VM_ID, 2026, 12)] == 31 * DAY
    assert usage[(VM_ID, 2027, 1)] == 31 * DAY
    assert sum(v for k, v in usage.items() if k[0] == VM_ID) == (31 - 9 + 30 + 31 + 31 + 9) * DAY


def test_opennebula_style_running_periods_give_running_time_and_status(make_site):
    site_data = copy.deepcopy(SITE)
    site_data["vms"][0].update({"run_periods": [["2026-10-10T00:00:00Z", "2026-10-15T00:00:00Z"],
                                                ["2026-11-02T00:00:00Z", None]]})
    site = make_site(site_data, {"accounting": {"record_types": ["cloud"]}})
    site.run("2026-11-03T00:00:00Z")
    records = records_of(site, 0)
    assert [(r["Status"], r["WallDuration"], r["SuspendDuration"]) for r in records] == [
        ("suspended", 5 * DAY, 22 * DAY - 1 - 5 * DAY), ("started", 6 * DAY, 18 * DAY)]
