"""How VMs are listed: one listing of all projects where the backend pages the whole pool for each
project anyway (OpenNebula), one per project where the cloud filters (OpenStack).  Either way each
project keeps its own window and state, and a failing project costs only itself."""

from __future__ import annotations

import json

import pytest
from accounting_support import two_project_site
from apel_loader import CloudDB, parse_message

from fedcloud_site.errors import JobIncomplete
from fedcloud_site.timeutil import parse_time, to_epoch
from fedcloud_testing.opennebula import generate as generate_one
from fedcloud_testing.openstack import from_site

NOW = "2026-11-20T10:00:00Z"
POOL_PAGES = "one.vmpool.infoextended"


def opennebula_pool(n_vms: int = 600):
    """A generated OpenNebula site: ``n_vms`` VMs over 120 days in 5 groups, each group naming its VO."""
    cloud = generate_one(n_vms=n_vms, seed=5, now=to_epoch(parse_time(NOW)))
    for group in cloud.groups.values():
        if "VO" in group.template:
            group.template["EGI_VO"] = group.template["VO"]  # the simulated fixture reads egi.VO from EGI_VO
    return cloud


def load(messages) -> CloudDB:
    db = CloudDB()
    for message in messages:
        db.load_message(message)
    return db


def test_opennebula_pages_the_pool_once_per_run_whatever_the_number_of_projects(simulated):
    groups = [str(g) for g in range(100, 105)]
    sites = {}
    for name, accounting in (("five", {}), ("two", {"projects": groups[:2]}),
                             ("five-per-project", {"vm_listing": "per_project"})):
        site, sim = simulated("opennebula", opennebula_pool(), {"accounting": dict(accounting, record_types=["cloud"])},
                              name=name, page_size=100)
        summary = site.run(NOW)
        sites[name] = (site, sim, summary)
    five, two, per_project = (sites[n] for n in ("five", "two", "five-per-project"))
    assert five[2]["vm_listing"] == two[2]["vm_listing"] == "all_projects"
    assert per_project[2]["vm_listing"] == "per_project"
    assert five[2]["projects"] == 5 and five[2]["vms"] > 300
    pages = five[1].calls[POOL_PAGES]
    assert pages == 7  # 600 VMs in pages of 100 overlapping by one
    assert two[1].calls[POOL_PAGES] == pages  # two projects or five: the same pages
    assert per_project[1].calls[POOL_PAGES] == 5 * pages  # what one listing per group costs
    assert five[1].total_calls <= pages + 10, dict(five[1].calls)  # + groups, users, hosts, templates, history...
    # the records are the same bytes, message for message
    assert sorted(five[0].messages()) == sorted(per_project[0].messages())
    assert {r["LocalGroupId"] for m in five[0].messages() for r in parse_message(m).records} == set(groups)


def test_opennebula_one_project_is_listed_on_its_own(simulated):
    site, sim = simulated("opennebula", opennebula_pool(100), {"accounting": {"record_types": ["cloud"]}},
                          page_size=100)
    summary = site.run(NOW, only="101")
    assert summary["vm_listing"] == "per_project" and summary["projects"] == 1
    assert sim.calls[POOL_PAGES] == 2


def test_openstack_and_static_list_per_project_by_default(simulated, make_site, golden_site_data):
    from accounting_support import GOLDEN_SITE

    site, _ = simulated("openstack", from_site(GOLDEN_SITE, now=parse_time(NOW)))
    assert site.run(NOW)["vm_listing"] == "per_project"
    static = make_site(golden_site_data, name="static")
    assert static.run(NOW)["vm_listing"] == "per_project"


def two_projects_site(make_site, listing: str, name: str):
    """Project A was extracted up to Nov 10, project B never (its window opens at first_run_start, Oct 1)."""
    vm = {"user": "u", "flavor": "m1"}
    data = {
        "projects": [{"id": "pa", "name": "fedcloud"}, {"id": "pb", "name": "bio", "properties": {"egi.VO": "biomed"}}],
        "flavors": [{"id": "m1", "name": "m1", "vcpus": 1, "ram": 2048, "disk": 20}],
        "vms": [
            dict(vm, id="aaaaaaaa-0000-4000-8000-000000000001", name="a-gone", project="pa", status="deleted",
                 created="2026-10-02T00:00:00Z", ended="2026-11-05T00:00:00Z"),
            dict(vm, id="aaaaaaaa-0000-4000-8000-000000000002", name="a-live", project="pa", status="running",
                 created="2026-10-15T00:00:00Z"),
            dict(vm, id="bbbbbbbb-0000-4000-8000-000000000001", name="b-gone", project="pb", status="deleted",
                 created="2026-10-03T00:00:00Z", ended="2026-10-20T00:00:00Z"),
            dict(vm, id="bbbbbbbb-0000-4000-8000-000000000002", name="b-live", project="pb", status="running",
                 created="2026-11-01T00:00:00Z"),
        ],
    }
    site = make_site(data, {"accounting": {"record_types": ["cloud"], "vm_listing": listing}}, name=name)
    site.run("2026-11-10T00:00:00Z", only="fedcloud")
    return site


def test_a_listing_of_all_projects_keeps_each_projects_own_window(make_site):
    together = two_projects_site(make_site, "all_projects", "together")
    alone = two_projects_site(make_site, "per_project", "alone")
    before = len(together.messages())
    summary = together.run(NOW)
    assert summary["vm_listing"] == "all_projects"
    alone.run(NOW)
    # byte for byte what per-project listings send, in the same order
    assert together.messages() == alone.messages()
    sent = [(r["MachineName"], r["Status"]) for m in together.messages()[before:] for r in parse_message(m).records]
    # a-gone ended before A's window (Nov 10) though inside B's (Oct 1): the listing returns it, A drops it
    assert ("a-gone", "completed") not in sent
    assert ("a-live", "started") in sent and ("b-gone", "completed") in sent
    assert [name for name, _ in sent].count("b-live") == 1 and [name for name, _ in sent].count("b-gone") == 1
    for project in ("pa", "pb"):
        state = json.loads((together.state_dir / "projects" / f"{project}.json").read_text())
        assert state["extracted_to"] == "2026-11-20T10:00:00Z"
    assert summary["vms"] == 1 + 2  # a-live; b-gone and b-live (a-gone is not A's any more)


@pytest.mark.parametrize("route", ["neutron.floatingips", "cinder.volumes.detail"])
def test_a_failing_project_in_a_listing_of_all_projects_costs_only_itself(simulated, route):
    site_data = two_project_site(
        volumes=[{"id": f"vol-{p}", "name": "data", "project": f"p{p}", "user": "u", "size": 5,
                  "created": "2026-11-01T00:00:00Z"} for p in (1, 2)],
        floating_ips=[{"id": f"fip-{p}", "address": f"192.0.2.{p}", "project": f"p{p}",
                       "created": "2026-11-01T00:00:00Z"} for p in (1, 2)])
    overrides = {"accounting": {"record_types": ["cloud", "ip", "storage"], "max_records_per_message": 2,
                                "vm_listing": "all_projects"}}
    site, sim = simulated("openstack", from_site(site_data, now=parse_time(NOW)), overrides, name="faulty",
                          retries=1)
    clean, _ = simulated("openstack", from_site(site_data, now=parse_time(NOW)), overrides, name="clean")
    # p1 asks first: both its attempts fail; p2's request after them succeeds
    sim.inject("status", route=route, count=2, status=503)
    with pytest.raises(JobIncomplete, match="project p1") as info:
        site.run("2026-11-20T00:00:00Z")
    assert info.value.summary["vm_listing"] == "all_projects"
    assert info.value.summary["projects_failed"] == 1
    states = site.state_dir / "projects"
    assert not (states / "p1.json").exists()
    assert json.loads((states / "p2.json").read_text())["extracted_to"] == "2026-11-20T00:00:00Z"
    sent = {r["LocalGroupId"] for m in site.messages() for r in parse_message(m).records if "LocalGroupId" in r}
    assert "p2" in sent
    site.run(NOW)  # p1 is extracted from where its state stood; p2 from its own state
    clean.run("2026-11-20T00:00:00Z")
    clean.run(NOW)
    assert load(site.messages()).rows == load(clean.messages()).rows
    assert {r["RecordId"] for m in site.messages(storage=True) for r in parse_message(m).records} == \
        {r["RecordId"] for m in clean.messages(storage=True) for r in parse_message(m).records}


def test_a_failing_listing_of_all_projects_leaves_every_state_and_is_caught_up(simulated):
    from fedcloud_testing.opennebula import OneFault

    site, sim = simulated("opennebula", opennebula_pool(300), {"accounting": {"record_types": ["cloud"]}},
                          name="faulty", page_size=100)
    sim.inject(OneFault("http", method=POOL_PAGES, status=503, count=1))
    with pytest.raises(JobIncomplete, match="503") as info:
        site.run("2026-11-19T10:00:00Z")
    assert info.value.summary["projects_failed"] == 5
    assert not (site.state_dir / "projects").exists() or not list((site.state_dir / "projects").iterdir())
    site.run(NOW)
    clean, _ = simulated("opennebula", opennebula_pool(300), {"accounting": {"record_types": ["cloud"]}},
                         name="clean", page_size=100)
    clean.run(NOW)
    assert load(site.messages()).rows == load(clean.messages()).rows
