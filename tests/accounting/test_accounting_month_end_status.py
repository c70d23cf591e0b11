"""A closed month's record carries the status the VM had at the month's end, not its current one (Status is
part of the APEL summary key), on every backend: OpenNebula from its history records, OpenStack from the
server's instance actions (read only for VMs changed since the month's end), static from ``history``."""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Tuple

import pytest
from apel_loader import parse_message

from fedcloud_site.errors import JobIncomplete
from fedcloud_site.timeutil import parse_time, to_epoch
from fedcloud_testing.opennebula import from_static
from fedcloud_testing.openstack import from_site

BASE: Dict[str, Any] = {
    "projects": [{"id": "p1", "name": "fedcloud"}],
    "flavors": [{"id": "m1", "name": "m1", "vcpus": 2, "ram": 2048, "disk": 20}],
}
BORN = "2026-11-01T00:00:00Z"
#: VM name -> its state changes after it booted on Nov 1 (time, running | suspended | deleted)
STORIES: Dict[str, List[Tuple[str, str]]] = {
    "sleeper": [("2026-12-03T00:00:00Z", "suspended")],  # the VM: suspended after November ended
    "waker": [("2026-11-20T00:00:00Z", "suspended"), ("2026-12-02T00:00:00Z", "running")],
    "quitter": [("2026-11-15T00:00:00Z", "suspended"), ("2026-12-02T00:00:00Z", "deleted")],
    "steady": [],
}
IDS = {name: f"{n:08d}-0000-4000-8000-000000000000" for n, name in enumerate(STORIES, start=1)}
NOVA_STATUS = {"running": "ACTIVE", "suspended": "SUSPENDED"}
NOVEMBER_END = to_epoch(parse_time("2026-11-30T23:59:59Z"))


def static_vm(name: str, upto: str) -> Dict[str, Any]:
    """The static description of a VM as it stands at ``upto``, with its history so far."""
    changes = [(when, state) for when, state in STORIES[name] if parse_time(when) <= parse_time(upto)]
    vm: Dict[str, Any] = {"id": IDS[name], "name": name, "project": "p1", "user": "u1", "created": BORN,
                          "flavor": "m1", "host": "node-1", "launched": BORN,
                          "history": [[BORN, "running"]] + [list(c) for c in changes]}
    vm["status"] = changes[-1][1] if changes else "running"
    vm["updated"] = changes[-1][0] if changes else BORN
    if vm["status"] == "deleted":
        vm["ended"] = vm["updated"]
    return vm


class Cloud:
    """The four VMs on one backend; ``run(now)`` applies the state changes up to ``now`` then extracts."""

    def __init__(self, kind: str, make_site: Callable[..., Any], simulated: Callable[..., Any],
                 **backend: Any) -> None:
        self.kind = kind
        self.applied = 0.0
        start = parse_time(BORN)
        overrides = {"accounting": {"record_types": ["cloud"], "first_run_start": BORN}}
        description = dict(BASE, vms=[static_vm(name, BORN) for name in STORIES])
        if kind == "openstack":
            self.data = from_site(description, now=start)
            self.site, self.sim = simulated("openstack", self.data, overrides, **backend)
        elif kind == "opennebula":
            for vm in description["vms"]:
                vm.update(status="pending")
                del vm["launched"], vm["history"], vm["updated"]
            self.cloud = from_static(description, now=to_epoch(start))
            self.vms = {vm.name: vm.id for vm in self.cloud.vms.values()}
            for vm_id in self.vms.values():
                self.cloud.deploy(vm_id)
            self.site, self.sim = simulated("opennebula", self.cloud, overrides)
        else:
            self.site = make_site(description, overrides)

    def _change(self, name: str, when: str, state: str) -> None:
        if self.kind == "openstack":
            self.data.set_now(parse_time(when))
            if state == "deleted":
                self.data.delete_server(IDS[name])
            else:
                self.data.set_server_status(IDS[name], NOVA_STATUS[state])
        elif self.kind == "opennebula":
            self.cloud.set_now(to_epoch(parse_time(when)))
            action = {"running": self.cloud.resume, "suspended": self.cloud.suspend,
                      "deleted": self.cloud.terminate}[state]
            action(self.vms[name])

    def run(self, now: str) -> Dict[str, List[Tuple[int, str]]]:
        """(RecordCreateTime or EndTime, Status) of each VM's records sent by the run at ``now``."""
        moment = to_epoch(parse_time(now))
        changes = sorted((parse_time(when), name, state) for name, story in STORIES.items()
                         for when, state in story if self.applied < to_epoch(parse_time(when)) <= moment)
        for when, name, state in changes:
            self._change(name, when.isoformat(), state)
        self.applied = moment
        if self.kind == "openstack":
            self.data.set_now(parse_time(now))
            self.sim.reset_counts()
        elif self.kind == "opennebula":
            self.cloud.set_now(moment)
        else:
            self.site.write_site(dict(BASE, vms=[static_vm(name, now) for name in STORIES]))
        before = len(self.site.messages())
        self.summary = self.site.run(now)
        sent: Dict[str, List[Tuple[int, str]]] = {}
        for message in self.site.messages()[before:]:
            for record in parse_message(message).records:
                when = record.get("RecordCreateTime") or record.get("EndTime")
                sent.setdefault(record["MachineName"], []).append((int(when), record["Status"]))
        return sent


BACKENDS = pytest.mark.parametrize("kind", ["openstack", "opennebula", "static"])


@BACKENDS
def test_a_closed_months_record_carries_the_status_the_vm_had_at_its_end(kind, make_site, simulated):
    cloud = Cloud(kind, make_site, simulated)
    cloud.run("2026-11-25T00:00:00Z")
    december = to_epoch(parse_time("2026-12-05T00:00:00Z"))
    sent = cloud.run("2026-12-05T00:00:00Z")
    assert sent == {
        "sleeper": [(NOVEMBER_END, "started"), (december, "suspended")],
        "waker": [(NOVEMBER_END, "suspended"), (december, "started")],
        "quitter": [(NOVEMBER_END, "suspended"), (to_epoch(parse_time("2026-12-02T00:00:00Z")), "completed")],
        "steady": [(NOVEMBER_END, "started"), (december, "started")],
    }


def test_openstack_reads_instance_actions_only_of_vms_changed_since_the_months_end(make_site, simulated):
    cloud = Cloud("openstack", make_site, simulated)
    cloud.run("2026-11-25T00:00:00Z")
    assert cloud.sim.requests.get("nova.server.instance_actions", 0) == 0  # no closed month in that window
    cloud.run("2026-12-05T00:00:00Z")
    # sleeper, waker and quitter changed in December; steady did not
    assert cloud.sim.requests["nova.server.instance_actions"] == 3
    assert (cloud.summary["vm_history_reads"], cloud.summary["vm_history_unreadable"]) == (3, 0)
    cloud.run("2026-12-05T06:00:00Z")
    assert cloud.sim.requests.get("nova.server.instance_actions", 0) == 0  # steady state: none


def test_openstack_instance_actions_are_paged_until_the_months_end_is_reached(make_site, simulated):
    cloud = Cloud("openstack", make_site, simulated, page_size=2)
    cloud.run("2026-11-25T00:00:00Z")
    # the sleeper is rebooted five times in December before its suspension: three pages of two actions
    for day in range(1, 6):
        cloud.data.set_now(parse_time(f"2026-12-02T0{day}:00:00Z"))
        cloud.data.set_server_status(IDS["sleeper"], "REBOOT")
        cloud.data.set_server_status(IDS["sleeper"], "ACTIVE")
    sent = cloud.run("2026-12-05T00:00:00Z")
    assert sent["sleeper"][0] == (NOVEMBER_END, "started")
    assert cloud.sim.requests["nova.server.instance_actions"] > 3  # the sleeper's took several pages


def test_a_nova_older_than_2_21_gives_no_history_and_the_documented_rule_applies(make_site, simulated):
    cloud = Cloud("openstack", make_site, simulated)
    cloud.sim.nova_max_version = "2.20"  # deleted servers' actions cannot be read: none are read
    cloud.run("2026-11-25T00:00:00Z")
    sent = cloud.run("2026-12-05T00:00:00Z")
    # changed since the month's end and no way to tell how: started
    assert [status for _, status in sent["sleeper"]] == ["started", "suspended"]
    assert [status for _, status in sent["waker"]] == ["started", "started"]
    assert cloud.sim.requests.get("nova.server.instance_actions", 0) == 0


def test_static_vms_without_history_follow_the_documented_rule(make_site):
    def vm(name: str, status: str, updated: str) -> Dict[str, Any]:
        return {"id": IDS[name], "name": name, "project": "p1", "user": "u1", "created": BORN, "flavor": "m1",
                "status": status, "updated": updated}

    site = make_site(dict(BASE, vms=[vm("sleeper", "suspended", "2026-12-03T00:00:00Z"),
                                     vm("waker", "suspended", "2026-11-20T00:00:00Z")]),
                     {"accounting": {"record_types": ["cloud"], "first_run_start": "2026-11-25"}})
    site.run("2026-12-05T00:00:00Z")
    sent = {r["MachineName"]: r["Status"] for m in site.messages() for r in parse_message(m).records
            if int(r["RecordCreateTime"]) == NOVEMBER_END}
    # changed after November ended, how is unknown: started; unchanged since before: its current status
    assert sent == {"sleeper": "started", "waker": "suspended"}


def test_unavailable_instance_actions_leave_the_project_for_the_next_run(make_site, simulated):
    cloud = Cloud("openstack", make_site, simulated, retries=0)
    cloud.run("2026-11-25T00:00:00Z")
    cloud.sim.inject("status", route="nova.server.instance_actions", count=100, status=503)
    with pytest.raises(JobIncomplete, match="503"):
        cloud.run("2026-12-05T00:00:00Z")
    assert load_state(cloud.site) == "2026-11-25T00:00:00Z"  # nothing of the window is taken as done
    cloud.sim.clear_faults()
    sent = cloud.run("2026-12-05T00:00:00Z")
    assert sent["sleeper"][0] == (NOVEMBER_END, "started")


def test_forbidden_instance_actions_fall_back_to_the_documented_rule(make_site, simulated):
    cloud = Cloud("openstack", make_site, simulated)
    cloud.run("2026-11-25T00:00:00Z")
    cloud.sim.inject("status", route="nova.server.instance_actions", count=100, status=403)
    sent = cloud.run("2026-12-05T00:00:00Z")
    assert [status for _, status in sent["waker"]] == ["started", "started"]  # changed since: started
    assert cloud.summary["vm_history_unreadable"] == 3


def load_state(site: Any) -> str:
    (path,) = (site.state_dir / "projects").glob("*.json")
    return str(json.loads(path.read_text())["extracted_to"])
