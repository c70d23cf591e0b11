"""The extractor against the OpenStack and OpenNebula simulators, through openstacksdk and pyone:
golden messages, lifecycle, no per-VM calls, and cloud faults in the middle of a run."""

from __future__ import annotations

import re

import pytest
from accounting_support import GOLDEN_DIR, GOLDEN_SITE, two_project_site
from apel_loader import CloudDB, parse_message

from fedcloud_site.errors import JobIncomplete
from fedcloud_site.timeutil import parse_time, to_epoch
from fedcloud_testing.opennebula import OneFault, from_static
from fedcloud_testing.openstack import from_site, generate

NOW = "2026-11-20T10:00:00Z"


def split_printed(text: str) -> list:
    return [part for part in re.split(r"^# message \d+: .*\n", text, flags=re.M) if part]


@pytest.mark.parametrize("kind", ["openstack", "opennebula"])
def test_golden_messages_through_the_real_client_library(simulated, kind):
    data = from_site(GOLDEN_SITE, now=parse_time(NOW)) if kind == "openstack" else \
        from_static(GOLDEN_SITE, now=to_epoch(parse_time(NOW)))
    site, _ = simulated(kind, data)
    printed = site.dry_run(NOW)
    assert printed == (GOLDEN_DIR / f"{kind}-2026-11-20.txt").read_text(encoding="ascii")
    for message in split_printed(printed):
        assert parse_message(message.encode("ascii")).records


@pytest.mark.parametrize("kind", ["openstack", "opennebula"])
def test_ip_and_accelerator_records_go_to_their_own_queues_never_to_the_cloud_queue(simulated, kind):
    data = from_site(GOLDEN_SITE, now=parse_time(NOW)) if kind == "openstack" else \
        from_static(GOLDEN_SITE, now=to_epoch(parse_time(NOW)))
    site, _ = simulated(kind, data, {"accounting": {"record_types": ["cloud", "ip", "accelerator"]}})
    site.run(NOW)
    for record_type in ("cloud", "ip", "accelerator"):
        queued = site.messages(kind=record_type)
        assert queued and {parse_message(m).kind for m in queued} == {record_type}
    assert site.messages(storage=True) == []


def test_openstack_steady_state_requests_grow_with_pages_not_vms(simulated):
    data = generate(seed=3, n_projects=2, vms_per_project=400, now=parse_time(NOW))
    for project in data.projects.values():
        if project.name.startswith("project-"):
            project.extra["egi.VO"] = "vo.example.org"
    site, sim = simulated("openstack", data, {"accounting": {"record_types": ["cloud", "ip", "accelerator"]}},
                          page_size=200)
    site.run("2026-11-20T04:00:00Z")
    sim.reset_counts()
    summary = site.run(NOW)
    building = sum(1 for s in data.servers.values() if s.launched_at is None and not s.deleted)
    assert building > 0  # never booted: no record
    assert summary["vms"] >= 600 and summary["cloud_records"] >= summary["vms"] - building
    assert sim.requests.get("nova.server", 0) == 0  # never GET /servers/{id}
    assert sim.total_requests <= 40, sim.requests


def test_openstack_vm_lifecycle(simulated):
    data = from_site({"projects": [{"id": "p1", "name": "fedcloud"}],
                      "flavors": [{"id": "m1", "name": "m1", "vcpus": 2, "ram": 2048, "disk": 20}]},
                     now=parse_time("2026-10-10T00:00:00Z"))
    user = next(u for u in data.users.values() if u.name == "admin")
    server = data.boot_server("p1", user.id, "m1", name="life", status="ACTIVE")
    site, _ = simulated("openstack", data, {"accounting": {"record_types": ["cloud"]}})
    statuses = []

    def run(now, status=None, delete=False):
        data.set_now(parse_time(now))
        if status:
            data.set_server_status(server.id, status)
        if delete:
            data.delete_server(server.id)
        before = len(site.messages())
        site.run(now)
        statuses.append([(r["Status"], r["WallDuration"]) for m in site.messages()[before:]
                         for r in parse_message(m).records if r["VMUUID"] == server.id])

    run("2026-10-20T00:00:00Z")
    run("2026-11-02T00:00:00Z")
    run("2026-11-05T00:00:00Z", status="SUSPENDED")
    run("2026-11-06T00:00:00Z", status="ACTIVE")
    run("2026-11-08T00:00:00Z", delete=True)
    run("2026-11-10T00:00:00Z")
    day = 86400
    assert statuses == [[("started", 10 * day)], [("started", 22 * day - 1), ("started", 23 * day)],
                        [("suspended", 26 * day)], [("started", 27 * day)], [("completed", 29 * day)], []]
    db = CloudDB()
    for message in site.messages():
        db.load_message(message)
    usage = db.monthly_usage()
    assert usage[(server.id, 2026, 10)] + usage[(server.id, 2026, 11)] == 29 * day


@pytest.mark.parametrize("fault", ["status", "delay"])
def test_openstack_5xx_or_timeout_mid_run_loses_nothing_and_is_retried(simulated, fault):
    site_data = two_project_site(volumes=[{"id": "vol-1", "name": "data", "project": "p1", "user": "u", "size": 5,
                                           "created": "2026-11-01T00:00:00Z"}])
    overrides = {"accounting": {"record_types": ["cloud", "storage"], "max_records_per_message": 2}}
    site, sim = simulated("openstack", from_site(site_data, now=parse_time(NOW)), overrides, name="faulty",
                          retries=1, timeout=0.3)
    clean, _ = simulated("openstack", from_site(site_data, now=parse_time(NOW)), overrides, name="clean")
    # the volume listing comes after p1's VM messages were queued: it fails however often it is retried
    if fault == "status":
        sim.inject("status", route="cinder.volumes.detail", count=100, status=503)
    else:
        sim.inject("delay", route="cinder.volumes.detail", count=100, delay=0.6)
    with pytest.raises(JobIncomplete, match="p1") as info:
        site.run("2026-11-20T00:00:00Z")
    assert info.value.summary["projects_failed"] == 2  # both list volumes after their VMs
    assert len(site.messages()) >= 4  # full messages of VM records were queued before the failure...
    assert not list((site.state_dir / "projects").glob("*.json"))  # ...but no state moved past them
    sim.clear_faults()
    site.run(NOW)  # the cloud is back: p1 is extracted from where its state stood
    clean.run("2026-11-20T00:00:00Z")
    clean.run(NOW)
    got, want = CloudDB(), CloudDB()
    for message in site.messages():
        got.load_message(message)
    for message in clean.messages():
        want.load_message(message)
    assert got.rows == want.rows
    assert {r["RecordId"] for m in site.messages(storage=True) for r in parse_message(m).records} == \
        {r["RecordId"] for m in clean.messages(storage=True) for r in parse_message(m).records}


def test_opennebula_5xx_mid_listing_loses_nothing_and_is_retried(simulated):
    cloud = from_static(GOLDEN_SITE, now=to_epoch(parse_time(NOW)))
    overrides = {"accounting": {"record_types": ["cloud"]}}
    site, sim = simulated("opennebula", cloud, overrides, name="faulty")
    sim.inject(OneFault("http", method="one.vmpool.infoextended", status=503, count=5))
    with pytest.raises(JobIncomplete, match="503"):
        site.run(NOW)
    assert not list((site.state_dir / "projects").glob("*.json")) if (site.state_dir / "projects").exists() else True
    sim.clear_faults()
    site.run(NOW)
    clean, _ = simulated("opennebula", from_static(GOLDEN_SITE, now=to_epoch(parse_time(NOW))), overrides,
                         name="clean")
    clean.run(NOW)
    assert site.messages() == clean.messages()


def test_opennebula_bad_vm_is_named_and_the_others_are_sent(simulated):
    cloud = from_static(GOLDEN_SITE, now=to_epoch(parse_time(NOW)))
    broken = cloud.vms[max(cloud.vms)]
    broken.template["MEMORY"] = "lots"
    site, _ = simulated("opennebula", cloud, {"accounting": {"record_types": ["cloud"]}})
    with pytest.raises(JobIncomplete, match=f"OpenNebula VM {broken.id}"):
        site.run(NOW)
    sent = {r["MachineName"] for m in site.messages() for r in parse_message(m).records}
    assert broken.name not in sent and "long-runner" in sent


def test_opennebula_vm_lifecycle_counts_running_time_from_history(simulated):
    start = parse_time("2026-10-10T00:00:00Z")
    cloud = from_static({"projects": [{"id": "g1", "name": "fedcloud"}],
                         "flavors": [{"id": "m1", "name": "m1", "vcpus": 1, "ram": 2048, "disk": 20}],
                         "vms": [{"id": "7", "name": "life", "project": "g1", "user": "u1", "status": "pending",
                                  "created": "2026-10-10T00:00:00Z", "flavor": "m1", "host": "node-1"}]},
                        now=to_epoch(start))
    vm = next(v for v in cloud.vms.values() if v.name == "life")
    cloud.deploy(vm.id)
    site, _ = simulated("opennebula", cloud, {"accounting": {"record_types": ["cloud"]}})
    day = 86400
    seen = []

    def run(now, action=None):
        cloud.set_now(to_epoch(parse_time(now)) - 86400)  # the action happened a day before the run
        if action:
            action(vm.id)
        cloud.set_now(to_epoch(parse_time(now)))
        before = len(site.messages())
        site.run(now)
        seen.append([(r["Status"], r["WallDuration"], r["SuspendDuration"]) for m in site.messages()[before:]
                     for r in parse_message(m).records])

    run("2026-10-20T00:00:00Z")
    run("2026-11-02T00:00:00Z")
    run("2026-11-05T00:00:00Z", cloud.suspend)  # suspended Nov 4
    run("2026-11-08T00:00:00Z", cloud.resume)  # resumed Nov 7
    run("2026-11-10T00:00:00Z", cloud.terminate)  # terminated Nov 9
    run("2026-11-12T00:00:00Z")
    assert seen == [[("started", 10 * day, 0)],
                    [("started", 22 * day - 1, 0), ("started", 23 * day, 0)],
                    [("suspended", 25 * day, day)],
                    [("started", 26 * day, 3 * day)],
                    [("completed", 27 * day, 3 * day)],
                    []]
    db = CloudDB()
    for message in site.messages():
        db.load_message(message)
    assert sum(db.monthly_usage().values()) == 27 * day
