"""VMs that never ran are not charged, on every backend (OpenStack through openstacksdk, OpenNebula through
pyone, static): no record while a VM builds or after its build failed, not even once it is deleted; records
start when it first runs."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple

import pytest
from apel_loader import parse_message

from fedcloud_site.timeutil import parse_time, to_epoch
from fedcloud_testing.opennebula import from_static
from fedcloud_testing.openstack import from_site

BASE: Dict[str, Any] = {
    "projects": [{"id": "p1", "name": "fedcloud"}],
    "flavors": [{"id": "m1", "name": "m1", "vcpus": 4, "ram": 2048, "disk": 20}],
}
KEEPER = {"id": "11111111-1111-4111-8111-111111111111", "name": "keeper", "project": "p1", "user": "u1",
          "status": "running", "created": "2026-11-01T00:00:00Z", "flavor": "m1", "host": "node-1"}
NEW_ID = "22222222-2222-4222-8222-222222222222"


def records(site: Any, since: int = 0) -> Dict[str, List[Dict[str, str]]]:
    """MachineName -> its cloud records queued after the first ``since`` messages."""
    found: Dict[str, List[Dict[str, str]]] = {}
    for message in site.messages()[since:]:
        for record in parse_message(message).records:
            found.setdefault(record["MachineName"], []).append(record)
    return found


class Backend:
    """One site, one VM named "newbie" created on Nov 10 that has not run yet, driven per backend."""

    def __init__(self, kind: str, make_site: Callable[..., Any], simulated: Callable[..., Any]) -> None:
        self.kind = kind
        start = parse_time("2026-11-10T00:00:00Z")
        newbie = {"id": NEW_ID, "name": "newbie", "project": "p1", "user": "u1", "status": "pending",
                  "created": "2026-11-10T00:00:00Z", "flavor": "m1", "host": "node-1", "launched": None}
        self.description = dict(BASE, vms=[KEEPER, newbie])
        overrides = {"accounting": {"record_types": ["cloud"], "first_run_start": "2026-11-01"}}
        if kind == "openstack":
            self.data = from_site(dict(BASE, vms=[KEEPER]), now=start)
            user = next(iter(self.data.servers.values())).user_id
            self.server = self.data.boot_server("p1", user, "m1", name="newbie", status="BUILD", id=NEW_ID,
                                                created=start)
            self.site, self.sim = simulated("openstack", self.data, overrides)
        elif kind == "opennebula":
            self.cloud = from_static(self.description, now=to_epoch(start))
            self.vm = next(v for v in self.cloud.vms.values() if v.name == "newbie")
            self.site, self.sim = simulated("opennebula", self.cloud, overrides)
        else:
            self.site = make_site(self.description, overrides)

    def at(self, when: str) -> None:
        """Actions that follow happen at ``when``."""
        if self.kind == "openstack":
            self.data.set_now(parse_time(when))
        elif self.kind == "opennebula":
            self.cloud.set_now(to_epoch(parse_time(when)))

    def _static_vm(self, **changes: Any) -> None:
        vm = self.description["vms"][1]
        vm.update(changes)
        self.site.write_site(self.description)

    def boot(self, when: str) -> None:
        self.at(when)
        if self.kind == "openstack":
            self.data.set_server_status(self.server.id, "ACTIVE")
        elif self.kind == "opennebula":
            self.cloud.deploy(self.vm.id)
        else:
            self._static_vm(status="running", launched=when)

    def fail_build(self, when: str) -> None:
        self.at(when)
        if self.kind == "openstack":
            self.data.set_server_status(self.server.id, "ERROR")
        elif self.kind == "opennebula":
            self.cloud.set_state(self.vm.id, "ACTIVE", "PROLOG_FAILURE")  # its disks never reached the host
        else:
            self._static_vm(status="error", updated=when)

    def delete(self, when: str) -> None:
        self.at(when)
        if self.kind == "openstack":
            self.data.delete_server(self.server.id)
        elif self.kind == "opennebula":
            self.cloud.terminate(self.vm.id)
        else:
            self._static_vm(status="deleted", ended=when)

    def run(self, when: str) -> Tuple[Dict[str, List[Dict[str, str]]], Dict[str, Any]]:
        self.at(when)
        before = len(self.site.messages())
        summary = self.site.run(when)
        return records(self.site, before), summary


BACKENDS = pytest.mark.parametrize("kind", ["openstack", "opennebula", "static"])


@BACKENDS
def test_a_vm_still_building_gets_no_record_and_its_records_start_when_it_first_runs(kind, make_site, simulated):
    cloud = Backend(kind, make_site, simulated)
    sent, summary = cloud.run("2026-11-20T00:00:00Z")
    assert "newbie" not in sent and [r["Status"] for r in sent["keeper"]] == ["started"]
    assert summary["vms"] == 2  # listed, and deliberately not charged

    cloud.boot("2026-11-21T00:00:00Z")
    sent, _ = cloud.run("2026-11-25T00:00:00Z")
    (record,) = sent["newbie"]
    assert record["Status"] == "started"
    assert int(record["StartTime"]) == to_epoch(parse_time("2026-11-10T00:00:00Z"))
    wall = int(record["WallDuration"])
    # OpenNebula knows the running time (4 days); Nova and a static site without run periods count from creation
    assert wall == (4 if kind == "opennebula" else 15) * 86400
    assert int(record["CpuDuration"]) == wall * 4


@BACKENDS
def test_a_vm_whose_build_failed_gets_no_record_even_once_deleted(kind, make_site, simulated):
    cloud = Backend(kind, make_site, simulated)
    cloud.fail_build("2026-11-11T00:00:00Z")
    sent, _ = cloud.run("2026-11-20T00:00:00Z")
    assert "newbie" not in sent and "keeper" in sent

    cloud.delete("2026-11-21T00:00:00Z")
    sent, _ = cloud.run("2026-11-25T00:00:00Z")
    assert "newbie" not in sent and "keeper" in sent

    # across a month boundary too: no November or December record
    sent, _ = cloud.run("2026-12-02T00:00:00Z")
    assert "newbie" not in sent and len(sent["keeper"]) == 2


def test_a_nova_server_without_launched_at_is_not_charged_whatever_its_status(simulated):
    """The defect as reported: a server listed in BUILD (or ERROR) without ``OS-SRV-USG:launched_at`` was sent
    as started with CPU = wall x vCPUs from its creation."""
    start = parse_time("2026-11-01T00:00:00Z")
    data = from_site(dict(BASE, vms=[KEEPER]), now=start)
    user = next(iter(data.servers.values())).user_id
    for status in ("BUILD", "ERROR", "DELETED"):
        server = data.boot_server("p1", user, "m1", name=f"never-{status.lower()}", status="BUILD", created=start)
        if status != "BUILD":
            data.set_server_status(server.id, status)
    site, sim = simulated("openstack", data, {"accounting": {"record_types": ["cloud"],
                                                             "first_run_start": "2026-10-25"}})
    data.set_now(parse_time("2026-11-25T00:00:00Z"))
    site.run("2026-11-25T00:00:00Z")
    assert set(records(site)) == {"keeper"}
    assert sim.requests.get("nova.server.instance_actions", 0) == 0
