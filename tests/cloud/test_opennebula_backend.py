"""The opennebula backend, driven through pyone against the OpenNebula XML-RPC simulator."""

from __future__ import annotations

import io
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, Iterator, Tuple

import pyone
import pytest
from one_settings import backend_settings

from fedcloud_site.cloud import backend_class, backend_names, open_backend
from fedcloud_site.cloud.base import (
    BadCloudData,
    CloudAuthError,
    CloudError,
    CloudUnavailable,
    ImageSpec,
    NotFound,
    NotSupported,
    Quota,
    UserSpec,
    VMState,
)
from fedcloud_site.cloud.opennebula import (
    VM_LCM_STATES,
    VM_STATES,
    OpenNebulaBackend,
    escape_dn,
    pci_accelerator,
    unescape_dn,
    vm_state,
    x509_password,
)
from fedcloud_site.cloud.static import StaticBackend, StaticSettings
from fedcloud_site.config import load_config
from fedcloud_site.errors import ConfigError
from fedcloud_site.timeutil import parse_time, to_epoch
from fedcloud_testing.opennebula import (
    OneFault,
    OpenNebulaSimulator,
    SimCloud,
    SimUser,
    SimVM,
    config_yaml,
    from_static,
    generate,
)
from fedcloud_testing.opennebula.server import ACTION, INTERNAL

REPO = Path(__file__).resolve().parents[2]
DEMO_SITE = REPO / "etc" / "fedcloud-site" / "demo-site.yaml"
T0 = 1_800_000_000  # the simulated clock of the life-cycle tests


def when(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


@pytest.fixture(scope="module")
def demo_sim() -> Iterator[OpenNebulaSimulator]:
    """The demo site of the static backend, served as OpenNebula."""
    with OpenNebulaSimulator(from_static(DEMO_SITE, now=to_epoch(parse_time("2026-11-20T00:00:00Z")))) as sim:
        yield sim


@pytest.fixture(scope="module")
def big_sim() -> Iterator[OpenNebulaSimulator]:
    with OpenNebulaSimulator(generate(n_vms=3000, seed=11)) as sim:
        yield sim


@pytest.fixture
def sim() -> Iterator[OpenNebulaSimulator]:
    """A small generated site the test may change."""
    with OpenNebulaSimulator(generate(n_vms=40, seed=5, now=T0)) as server:
        yield server


def backend(sim: OpenNebulaSimulator, **overrides) -> OpenNebulaBackend:
    return OpenNebulaBackend(backend_settings(sim, **overrides))


# -- plugin and configuration ----------------------------------------------------------------------------
def test_plugin_discovery_finds_the_opennebula_backend():
    assert "opennebula" in backend_names()
    assert backend_class("opennebula") is OpenNebulaBackend


def test_config_selects_the_backend_and_reads_the_password_from_a_file(tmp_path, write_config, demo_sim):
    secret = tmp_path / "one.pass"
    secret.write_text("opennebula\n")
    path = write_config(f"site: {{name: S}}\ncloud:\n  backend: opennebula\n  opennebula:\n"
                        f"    endpoint: {demo_sim.url}\n    username: oneadmin\n    password_file: {secret}\n")
    config = load_config(path)
    assert config.cloud_backend_settings.password == "opennebula"
    assert config.as_plain()["cloud"]["opennebula"]["password"] == "********"
    cloud = open_backend(config)
    assert isinstance(cloud, OpenNebulaBackend)
    assert {p.name for p in cloud.list_projects()} >= {"fedcloud", "biomed-cloud"}


def test_config_yaml_helper_gives_a_valid_section(write_config, demo_sim):
    config = load_config(write_config("site: {name: S}\n" + config_yaml(demo_sim)))
    assert config.cloud_backend_settings.endpoint == demo_sim.url


@pytest.mark.parametrize("section, key, problem", [
    ("endpoint: http://h/RPC2\n    username: u", "cloud.opennebula", "password: required"),
    ("endpoint: http://h/RPC2\n    password: p", "cloud.opennebula", "username: required"),
    ("endpoint: h:2633\n    username: u\n    password: p", "cloud.opennebula", "endpoint: expected an http"),
    ("endpoint: http://h/RPC2\n    username: u\n    password: p\n    one_auth: /x", "cloud.opennebula",
     "one_auth: give either"),
    ("endpoint: http://h/RPC2\n    username: u\n    password: p\n    page_size: 1", "cloud.opennebula",
     "page_size: must be at least 2"),
    ("endpoint: http://h/RPC2\n    username: u\n    password: p\n    pasword: x", "cloud.opennebula.pasword",
     "unknown key"),
    ("endpoint: http://h/RPC2\n    username: u\n    password: p\n    page_size: many", "cloud.opennebula.page_size",
     "expected an integer"),
])
def test_config_errors_name_the_key(write_config, section, key, problem):
    path = write_config(f"site: {{name: S}}\ncloud:\n  backend: opennebula\n  opennebula:\n    {section}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == key
    assert problem in info.value.problem
    assert str(path) in str(info.value)


def test_one_auth_file_gives_the_session(tmp_path, demo_sim):
    auth = tmp_path / "one_auth"
    auth.write_text("oneadmin:opennebula\n")
    cloud = OpenNebulaBackend(backend_settings(demo_sim, username=None, password=None, one_auth=auth))
    assert any(g.name == "fedcloud" for g in cloud.list_groups())


# -- state table ---------------------------------------------------------------------------------------
def test_every_opennebula_state_has_an_explicit_mapping():
    assert set(VM_STATES) == {s.name for s in pyone.VM_STATE} - {"ACTIVE"}
    assert set(VM_LCM_STATES) == {s.name for s in pyone.LCM_STATE}


@pytest.mark.parametrize("state, lcm, expected, status", [
    ("PENDING", "LCM_INIT", VMState.PENDING, "PENDING"),
    ("HOLD", "LCM_INIT", VMState.PENDING, "HOLD"),
    ("ACTIVE", "PROLOG", VMState.PENDING, "ACTIVE/PROLOG"),
    ("ACTIVE", "BOOT", VMState.RUNNING, "ACTIVE/BOOT"),
    ("ACTIVE", "RUNNING", VMState.RUNNING, "ACTIVE/RUNNING"),
    ("ACTIVE", "MIGRATE", VMState.RUNNING, "ACTIVE/MIGRATE"),
    ("ACTIVE", "HOTPLUG_NIC", VMState.RUNNING, "ACTIVE/HOTPLUG_NIC"),
    ("ACTIVE", "EPILOG", VMState.STOPPED, "ACTIVE/EPILOG"),
    ("ACTIVE", "BOOT_FAILURE", VMState.ERROR, "ACTIVE/BOOT_FAILURE"),
    ("ACTIVE", "UNKNOWN", VMState.UNKNOWN, "ACTIVE/UNKNOWN"),
    ("ACTIVE", "DISK_SNAPSHOT_SUSPENDED", VMState.SUSPENDED, "ACTIVE/DISK_SNAPSHOT_SUSPENDED"),
    ("STOPPED", "LCM_INIT", VMState.STOPPED, "STOPPED"),
    ("SUSPENDED", "LCM_INIT", VMState.SUSPENDED, "SUSPENDED"),
    ("DONE", "LCM_INIT", VMState.DELETED, "DONE"),
    ("POWEROFF", "LCM_INIT", VMState.STOPPED, "POWEROFF"),
    ("UNDEPLOYED", "LCM_INIT", VMState.STOPPED, "UNDEPLOYED"),
    ("CLONING", "LCM_INIT", VMState.PENDING, "CLONING"),
    ("CLONING_FAILURE", "LCM_INIT", VMState.ERROR, "CLONING_FAILURE"),
])
def test_state_table(state, lcm, expected, status):
    assert vm_state(int(pyone.VM_STATE[state]), int(pyone.LCM_STATE[lcm])) == (expected, status)


def test_unknown_state_codes_are_unknown_not_errors():
    assert vm_state(99, 0) == (VMState.UNKNOWN, "STATE 99")
    assert vm_state(3, 999) == (VMState.UNKNOWN, "ACTIVE/LCM_STATE 999")


def test_states_of_listed_vms_follow_the_table(big_sim):
    cloud = backend(big_sim)
    seen = set()
    for vm in cloud.list_vms(active_since=when(0)):
        raw = big_sim.cloud.vms[int(vm.id)]
        assert (vm.state, vm.status) == vm_state(raw.state, raw.lcm_state)
        seen.add(vm.status)
    assert {"ACTIVE/RUNNING", "DONE", "POWEROFF", "UNDEPLOYED", "CLONING", "SUSPENDED", "STOPPED", "HOLD"} <= seen


# -- projects, flavours, capacity, quota ----------------------------------------------------------------------
def test_groups_are_projects_and_vo_attribute_names_the_vo(big_sim):
    projects = {p.id: p for p in backend(big_sim, vo_attribute="vo").list_projects()}
    assert projects["100"].name == "vo0.example.eu"
    assert projects["100"].properties["egi.VO"] == "vo0.example.eu"
    assert "egi.VO" not in projects["0"].properties


def test_templates_are_flavors_with_accelerators_and_benchmarks(demo_sim, big_sim):
    demo = {f.name: f for f in backend(demo_sim).list_flavors()}
    assert (demo["m1.large"].vcpus, demo["m1.large"].ram_mb, demo["m1.large"].disk_gb) == (4, 8192, 100)
    assert (demo["m1.large"].benchmark_type, demo["m1.large"].benchmark_value) == ("HEPSPEC06", 10.5)
    gpu = demo["g1.a100"].accelerator
    assert gpu is not None and (gpu.vendor, gpu.model, gpu.count) == ("NVIDIA", "A100", 1)
    assert demo["g1.a100"].public is False and demo["m1.small"].public is True
    generated = {f.name: f for f in backend(big_sim).list_flavors()}
    pci = generated["gpu"].accelerator
    assert pci is not None and (pci.type, pci.vendor, pci.model) == ("GPU", "NVIDIA", "NVIDIA A100")


def test_pci_devices_of_display_class_count_as_gpus():
    template = {"PCI": [{"VENDOR": "10de", "CLASS": "0302", "DEVICE": "20b5"},
                        {"VENDOR": "10de", "CLASS": "0302", "DEVICE": "20b5"},
                        {"VENDOR": "15b3", "CLASS": "0207"}]}
    gpu = pci_accelerator(template)
    assert gpu is not None and (gpu.vendor, gpu.model, gpu.count) == ("NVIDIA", "20b5", 2)
    assert pci_accelerator({"PCI": {"VENDOR": "15b3", "CLASS": "0207"}}) is None


def add_template(one: pyone.OneServer, name: str, group: int, use: Tuple[int, int, int]) -> int:
    """A template made through pyone, chowned to ``group`` with (owner, group, other) USE bits."""
    oid = one.template.allocate(f'NAME="{name}"\nCPU="1"\nVCPU="2"\nMEMORY="1024"')
    one.template.chown(oid, -1, group)
    owner_u, group_u, other_u = use
    one.template.chmod(oid, owner_u, 1, 0, group_u, 0, 0, other_u, 0, 0)
    return oid


@pytest.fixture
def access_sim(sim) -> Iterator[Tuple[OpenNebulaSimulator, Dict[str, int]]]:
    """The small site with a public, a group-only (group 101) and an owner-only template."""
    one = pyone.OneServer(sim.url, session="oneadmin:opennebula")
    ids = {"public": add_template(one, "everyone", 100, (1, 1, 1)),
           "group": add_template(one, "group-101-only", 101, (1, 1, 0)),
           "owner": add_template(one, "owner-only", 101, (1, 0, 0))}
    yield sim, ids


def test_oned_renders_a_templates_group_and_permissions_in_the_pool(access_sim):
    sim, ids = access_sim
    pool = pyone.OneServer(sim.url, session="oneadmin:opennebula").templatepool.info(-2, -1, -1)
    raw = {t.ID: t for t in pool.VMTEMPLATE}[ids["group"]]
    assert (raw.GID, raw.GNAME, raw.UID, raw.UNAME) == (101, "vo1.example.eu", 0, "oneadmin")
    perms = raw.PERMISSIONS
    assert (perms.OWNER_U, perms.OWNER_M, perms.GROUP_U, perms.GROUP_M, perms.OTHER_U) == (1, 1, 1, 0, 0)


def test_template_permissions_say_which_projects_may_use_a_flavor(access_sim):
    sim, ids = access_sim
    cloud = backend(sim)
    flavors = {f.id: f for f in cloud.list_flavors()}
    public, group, owner = (flavors[str(ids[k])] for k in ("public", "group", "owner"))
    assert (public.public, public.projects) == (True, None)  # OTHER_U: every project
    assert (group.public, group.projects) == (False, ("101",))  # GROUP_U only: its group
    assert (owner.public, owner.projects) == (False, ())  # owner only: no project
    assert (group.vcpus, group.ram_mb) == (2, 1024)
    assert cloud.request_count()["total"] == 1  # the template pool carries the permissions: no call per template


def test_a_group_member_lists_its_groups_template_but_not_another_groups(access_sim):
    sim, ids = access_sim
    for uid, gid in ((90, 101), (91, 102)):
        sim.cloud.users[uid] = SimUser(id=uid, name=f"member{gid}", password="pw", gid=gid, groups=[gid])
    member = {f.id: f for f in backend(sim, username="member101", password="pw").list_flavors()}
    outsider = {f.id: f for f in backend(sim, username="member102", password="pw").list_flavors()}
    assert member[str(ids["group"])].projects == ("101",)
    assert str(ids["group"]) not in outsider and str(ids["owner"]) not in outsider
    assert outsider[str(ids["public"])].projects is None


def test_a_static_sites_private_flavor_of_one_project_is_a_template_of_that_group():
    site = {"projects": [{"id": "p1", "name": "fedcloud"}, {"id": "p2", "name": "biomed"}],
            "flavors": [{"id": "open", "vcpus": 1, "ram": 512},
                        {"id": "gpu", "vcpus": 8, "ram": 4096, "public": False, "projects": ["p2"]},
                        {"id": "closed", "vcpus": 1, "ram": 512, "public": False}]}
    cloud = from_static(site)
    with OpenNebulaSimulator(cloud) as server:
        flavors = {f.name: f for f in backend(server).list_flavors()}
    assert flavors["open"].projects is None
    assert flavors["gpu"].projects == (str(cloud.id_map["group"]["p2"]),) and not flavors["gpu"].public
    assert flavors["closed"].projects == ()  # OpenNebula has no "not told": owner-only


def test_a_static_sites_private_flavor_of_several_projects_is_refused_by_name():
    site = {"projects": [{"id": "p1"}, {"id": "p2"}],
            "flavors": [{"id": "gpu", "vcpus": 8, "ram": 4096, "public": False, "projects": ["p1", "p2"]}]}
    with pytest.raises(ValueError, match=r"flavors\[gpu\]\.projects"):
        from_static(site)


def test_capacity_sums_the_hosts(demo_sim):
    capacity = backend(demo_sim).capacity()
    assert capacity.total_vcpus == 512 and capacity.total_ram_mb == 2097152
    assert capacity.hypervisor == "KVM" and capacity.hypervisor_version == "8.2"
    assert capacity.running_vms == 2


def test_quota_comes_from_the_group(demo_sim):
    cloud = backend(demo_sim)
    fedcloud = demo_sim.cloud.id_map["group"]["3a1f0c2e9d7b4e7f8a6b5c4d3e2f1a0b"]
    quota = cloud.quota(str(fedcloud))
    assert (quota.instances, quota.cores, quota.ram_mb) == (50, 200, 409600)
    unlimited = cloud.quota(str(demo_sim.cloud.id_map["group"]["5e8a1c3b7d9f4b2a8c6e4a2c8e1b3d5f"]))
    assert (unlimited.instances, unlimited.cores, unlimited.ram_mb) == (None, None, None)
    with pytest.raises(NotFound):
        cloud.quota("4242")


# -- VMs -------------------------------------------------------------------------------------------------------
def test_the_same_site_reads_the_same_through_static_and_opennebula(demo_sim, tmp_path):
    static = StaticBackend(StaticSettings(site_file=DEMO_SITE, state_file=tmp_path / "s.json"))
    since = parse_time("2026-10-01T00:00:00Z")
    one = {vm.name: vm for vm in backend(demo_sim).list_vms(active_since=since)}
    ref = {vm.name: vm for vm in static.list_vms(active_since=since)}
    assert set(one) == set(ref)
    for name, expected in ref.items():
        got = one[name]
        assert got.state is expected.state, name
        assert (got.created_at, got.ended_at) == (expected.created_at, expected.ended_at), name
        assert (got.vcpus, got.ram_mb, got.disk_gb) == (expected.vcpus, expected.ram_mb, expected.disk_gb), name
        assert got.public_ip_count == expected.public_ip_count, name
        assert got.accelerator == expected.accelerator, name
        assert (got.benchmark_type, got.benchmark_value) == (expected.benchmark_type, expected.benchmark_value)
    worker = one["worker-1"]
    assert worker.user_name == "/DC=org/DC=example/CN=Jane Doe"
    assert worker.image_id.startswith("https://appdb.egi.eu/store/vo/image/")
    assert worker.host == "compute-01"
    assert worker.run_periods is not None and worker.run_periods[0].start == worker.created_at
    short = one["short-job"]
    assert short.run_periods == ((short.created_at, short.ended_at),) or \
        [(p.start, p.end) for p in short.run_periods] == [(short.created_at, short.ended_at)]


def test_listing_without_active_since_leaves_out_done_vms(big_sim):
    vms = list(backend(big_sim).list_vms())
    done = {vm.id for vm in big_sim.cloud.vms.values() if vm.state == int(pyone.VM_STATE.DONE)}
    assert vms and not {vm.id for vm in vms} & {str(i) for i in done}
    assert len(vms) == len(big_sim.cloud.vms) - len(done)


def test_active_since_keeps_done_vms_ended_after_it_and_only_those(big_sim):
    since_epoch = big_sim.cloud.now() - 20 * 86400
    vms = {vm.id: vm for vm in backend(big_sim, complete_history=False).list_vms(active_since=when(since_epoch))}
    for raw in big_sim.cloud.vms.values():
        if raw.state == int(pyone.VM_STATE.DONE):
            assert (str(raw.id) in vms) == (raw.etime >= since_epoch), raw.id
        else:
            assert str(raw.id) in vms


def test_listing_a_project_returns_only_its_vms(big_sim):
    vms = list(backend(big_sim).list_vms("101"))
    assert vms and {vm.project_id for vm in vms} == {"101"}


def test_project_after_project_listings_read_users_hosts_and_templates_once(sim):
    cloud = backend(sim)
    for project in ("100", "101", "102"):
        list(cloud.list_vms(project, active_since=when(T0 - 86400)))
    counts = cloud.request_count()
    assert counts["one.userpool.info"] == counts["one.hostpool.info"] == counts["one.templatepool.info"] == 1
    assert counts["one.vmpool.accounting"] <= 4  # the shared window once, what came before per listing
    stale = backend(sim, cache_seconds=0)
    for project in ("100", "101"):
        list(stale.list_vms(project))
    assert stale.request_count()["one.userpool.info"] == 2


def test_paging_calls_grow_with_pages_not_vms(big_sim):
    big_sim.reset_counts()
    cloud = backend(big_sim, page_size=300)
    vms = list(cloud.list_vms())
    pages = big_sim.calls["one.vmpool.infoextended"]
    assert pages == math.ceil(len(vms) / 299) or pages == math.ceil(len(vms) / 299) + 1
    assert cloud.request_count()["total"] == pages + 4  # users, hosts, clusters, templates: once each
    assert "one.vm.info" not in big_sim.calls
    assert len({vm.id for vm in vms}) == len(vms)


def test_paging_loses_no_vm_when_earlier_vms_finish_during_the_listing(sim):
    alive = sorted(i for i, vm in sim.cloud.vms.items() if vm.state != int(pyone.VM_STATE.DONE))
    early, late = alive[:8], alive[8:]
    pages = []

    def finish_early_vms(method, params):
        if method == "one.vmpool.infoextended":
            pages.append(params)
            if len(pages) == 2:
                for vm_id in early:
                    sim.cloud.terminate(vm_id)

    sim.before_call = finish_early_vms
    listed = [int(vm.id) for vm in backend(sim, page_size=5).list_vms()]
    assert set(late) <= set(listed)
    assert len(listed) == len(set(listed))


def test_a_pool_listed_in_descending_order_is_refused_clearly(sim):
    sim.list_order = "DESC"
    with pytest.raises(CloudError, match="API_LIST_ORDER"):
        list(backend(sim, page_size=5).list_vms())


def test_vm_details_come_from_template_monitoring_and_owner():
    cloud = SimCloud(now=T0)
    site = generate(n_vms=0, seed=1, now=T0)
    cloud = site
    user = cloud.users[3]
    vm = cloud.add_vm(SimVM(id=7, uid=user.id, gid=user.gid, name="detailed", state=1, lcm_state=0, stime=T0,
                            uname=user.name, gname=cloud.groups[user.gid].name,
                            template={"CPU": "0.5", "VCPU": "2", "MEMORY": "3072", "TEMPLATE_ID": "1",
                                      "DISK": [{"IMAGE_ID": "4", "SIZE": "10240",
                                                "VMCATCHER_EVENT_AD_MPURI": "https://appdb/x:1/"},
                                               {"SIZE": "2048", "TYPE": "fs"}],
                                      "NIC": [{"IP": "10.1.2.3"}, {"IP": "193.0.2.7", "IP6_GLOBAL": "2001:db8::7"}],
                                      "NIC_ALIAS": {"IP": "172.16.0.9"}}))
    cloud.deploy(vm.id, 0)
    cloud.set_monitoring(vm.id, NETRX=1000, NETTX=2000)
    with OpenNebulaSimulator(cloud) as server:
        (got,) = backend(server).list_vms()
    assert (got.vcpus, got.ram_mb, got.disk_gb, got.flavor_id) == (2, 3072, 12, "1")
    assert got.image_id == "https://appdb/x:1/"
    assert got.public_ip_count == 2
    assert {a.address for a in got.addresses} == {"10.1.2.3", "193.0.2.7", "2001:db8::7", "172.16.0.9"}
    assert (got.network_in_bytes, got.network_out_bytes) == (1000, 2000)
    assert got.user_name == user.template["X509_DN"] and got.user_id == str(user.id)
    assert (got.benchmark_type, got.benchmark_value) == ("HEPSPEC06", 10.0)  # host 0 has its own benchmark
    assert got.host == cloud.hosts[0].name


def test_image_id_is_the_image_number_without_an_inherited_marketplace_uri(sim):
    vm = next(v for v in sim.cloud.vms.values() if v.state != int(pyone.VM_STATE.DONE))
    vm.template["DISK"] = {"IMAGE_ID": "3", "SIZE": "100"}
    vm.changed()
    got = next(v for v in backend(sim).list_vms() if v.id == str(vm.id))
    assert got.image_id == "3"


def test_benchmark_falls_back_from_host_to_cluster(sim):
    host = next(h for h in sim.cloud.hosts.values() if "BENCHMARK_TYPE" not in h.template)
    vm = next(v for v in sim.cloud.vms.values() if v.state == int(pyone.VM_STATE.ACTIVE) and v.history)
    sim.cloud.migrate(vm.id, host.id)
    got = next(v for v in backend(sim).list_vms() if v.id == str(vm.id))
    assert (got.benchmark_type, got.benchmark_value) == ("HEPSPEC06", 9.5)


def lifecycle_cloud() -> SimCloud:
    cloud = generate(n_vms=0, seed=2, now=T0)
    user = cloud.users[3]
    cloud.add_vm(SimVM(id=0, uid=user.id, gid=user.gid, name="life", state=int(pyone.VM_STATE.PENDING),
                       lcm_state=0, stime=T0, uname=user.name, gname=cloud.groups[user.gid].name,
                       template={"CPU": "1", "VCPU": "1", "MEMORY": "512"}))
    return cloud


def test_vms_move_through_their_life_cycle_with_the_clock():
    cloud = lifecycle_cloud()
    with OpenNebulaSimulator(cloud) as server:
        one = backend(server)

        def current():
            return next(iter(one.list_vms(active_since=when(T0 - 1))))

        assert current().state is VMState.PENDING and current().run_periods == ()
        cloud.advance(60)
        cloud.deploy(0, 1)
        assert current().state is VMState.RUNNING and current().host == cloud.hosts[1].name
        cloud.advance(3600)
        cloud.poweroff(0)
        assert current().state is VMState.STOPPED and current().status == "POWEROFF"
        cloud.advance(600)
        cloud.resume(0)
        cloud.advance(100)
        cloud.undeploy(0)
        assert current().status == "UNDEPLOYED"
        cloud.advance(50)
        cloud.resume(0, 2)
        cloud.advance(200)
        cloud.migrate(0, 3)
        cloud.advance(300)
        cloud.terminate(0)
        final = current()
    assert final.state is VMState.DELETED and final.ended_at == when(T0 + 4910)
    assert [(p.start, p.end) for p in final.run_periods] == [
        (when(T0 + 60), when(T0 + 3660)), (when(T0 + 4260), when(T0 + 4360)), (when(T0 + 4410), when(T0 + 4610)),
        (when(T0 + 4610), when(T0 + 4910))]
    assert final.host is None


def test_history_before_the_window_is_completed_by_one_more_accounting_call():
    cloud = lifecycle_cloud()
    cloud.advance(60)
    cloud.deploy(0, 1)
    cloud.advance(1000)
    cloud.suspend(0)
    cloud.advance(1000)
    cloud.resume(0)
    cloud.advance(10_000)
    since = when(cloud.now() - 100)
    with OpenNebulaSimulator(cloud) as server:
        complete = backend(server)
        (vm,) = complete.list_vms(active_since=since)
        assert len(vm.run_periods) == 2 and vm.run_periods[0].start == when(T0 + 60)
        assert complete.request_count()["one.vmpool.accounting"] == 2  # the window, then before it
        assert "one.vm.info" not in complete.request_count()
        window_only = backend(server, complete_history=False)
        (vm,) = window_only.list_vms(active_since=since)
        assert [(p.start, p.end) for p in vm.run_periods] == [(when(T0 + 2060), None)]
        assert "one.vm.info" not in window_only.request_count()
        plain = backend(server)
        (vm,) = plain.list_vms()
        assert vm.run_periods is None  # earlier records unknown without a window; no per-VM calls
        assert "one.vmpool.accounting" not in plain.request_count()


def test_run_periods_are_complete_for_every_vm_with_a_constant_number_of_calls(big_sim):
    cloud = big_sim.cloud
    since = cloud.now() - 30 * 86400
    one = backend(big_sim, page_size=1000)
    vms = list(one.list_vms(active_since=when(since)))
    multi = [vm for vm in vms if len(cloud.vms[int(vm.id)].history) > 1]
    assert len(multi) > 300
    for vm in vms:
        expected = [(when(h.rstime), when(h.retime) if h.retime else None) for h in cloud.vms[int(vm.id)].history]
        assert [(p.start, p.end) for p in vm.run_periods] == expected, vm.id
    calls = one.request_count()
    assert calls["one.vmpool.accounting"] == 2 and "one.vm.info" not in calls
    assert calls["total"] == calls["one.vmpool.infoextended"] + 6


def test_history_read_for_an_earlier_listing_is_read_again_once_outdated():
    cloud = lifecycle_cloud()
    cloud.advance(60)
    cloud.deploy(0, 1)
    cloud.advance(100)
    cloud.poweroff(0)
    cloud.advance(100)
    cloud.resume(0)
    with OpenNebulaSimulator(cloud) as server:
        one = backend(server)
        (vm,) = one.list_vms(active_since=when(T0))
        assert len(vm.run_periods) == 2 and vm.run_periods[1].end is None
        cloud.advance(100)
        cloud.migrate(0, 2)  # record 1 closes, record 2 opens: the kept window has record 1 still open
        (vm,) = one.list_vms(active_since=when(T0))
        assert [(p.start, p.end) for p in vm.run_periods] == [
            (when(T0 + 60), when(T0 + 160)), (when(T0 + 260), when(T0 + 360)), (when(T0 + 360), None)]
        assert one.request_count()["one.vmpool.accounting"] == 2  # read again once, for the second listing
        (vm,) = one.list_vms(active_since=when(T0))
        assert len(vm.run_periods) == 3
        assert one.request_count()["one.vmpool.accounting"] == 2  # the answer read again is kept


def test_a_malformed_vm_raises_bad_cloud_data_naming_it(sim):
    vm = next(v for v in sim.cloud.vms.values() if v.state != int(pyone.VM_STATE.DONE))
    vm.template["MEMORY"] = "lots"
    vm.changed()
    with pytest.raises(BadCloudData, match=f"VM {vm.id}: MEMORY 'lots' is not a number"):
        list(backend(sim).list_vms())


def test_with_a_bad_record_handler_the_listing_skips_the_record_and_goes_on(sim):
    bad = next(v for v in sim.cloud.vms.values() if v.state != int(pyone.VM_STATE.DONE))
    bad.template["VCPU"] = "two"
    bad.changed()
    cloud = backend(sim)
    errors = []
    cloud.on_bad_record = errors.append
    listed = {vm.id for vm in cloud.list_vms()}
    assert str(bad.id) not in listed and len(listed) == sum(
        1 for v in sim.cloud.vms.values() if v.state != int(pyone.VM_STATE.DONE)) - 1
    assert [str(e) for e in errors] == [f"OpenNebula VM {bad.id}: VCPU 'two' is not a number"]


def test_a_bad_template_is_skipped_by_the_handler_too(sim):
    sim.cloud.templates[0].template["MEMORY"] = "much"
    cloud = backend(sim)
    errors = []
    cloud.on_bad_record = errors.append
    assert len(list(cloud.list_flavors())) == len(sim.cloud.templates) - 1
    assert "template 0: MEMORY 'much'" in str(errors[0])


def test_a_bad_benchmark_names_the_host(sim):
    host = sim.cloud.hosts[0]
    host.template["BENCHMARK_VALUE"] = "fast"
    vm = next(v for v in sim.cloud.vms.values() if v.state == int(pyone.VM_STATE.ACTIVE) and v.history)
    sim.cloud.migrate(vm.id, host.id)
    with pytest.raises(BadCloudData, match=f"host {host.name}: BENCHMARK_VALUE 'fast'"):
        list(backend(sim).list_vms())


# -- images -----------------------------------------------------------------------------------------------------
def test_images_list_with_owner_and_properties(big_sim):
    cloud = backend(big_sim)
    images = list(cloud.list_images())
    assert len(images) == 10
    owned = list(cloud.list_images(owner="101"))
    assert owned and {i.owner for i in owned} == {"101"}
    first = cloud.get_image("0")
    assert first.properties["VMCATCHER_EVENT_AD_MPURI"].startswith("https://appdb.egi.eu/")
    assert first.visibility == "shared" and first.size == (1024 << 20)
    with pytest.raises(NotFound):
        cloud.get_image("999")


def test_create_image_stages_the_file_waits_for_ready_and_cleans_up(sim, tmp_path):
    upload = tmp_path / "upload"
    sim.image_copy_reads = 1  # LOCKED for one poll, however long the machine takes to make it
    cloud = backend(sim, upload_dir=upload)
    payload = b"\x51\x46\x49\xfb" + b"\0" * 3_000_000
    image = cloud.create_image(ImageSpec(name="EGI Ubuntu", disk_format="qcow2", owner="102", visibility="shared",
                                         properties={"vmcatcher_event_ad_mpuri": "https://appdb/u:7/",
                                                     "ad:vo": "fedcloud"}), io.BytesIO(payload))
    assert image.status == "active" and image.owner == "102" and image.visibility == "shared"
    assert image.size == 3 << 20 and image.disk_format == "qcow2"
    assert image.properties["VMCATCHER_EVENT_AD_MPURI"] == "https://appdb/u:7/"
    assert image.properties["AD_VO"] == "fedcloud"
    assert image.checksum is not None and len(image.checksum) == 32
    assert cloud.request_count()["one.image.info"] >= 2  # polled while LOCKED
    assert list(upload.iterdir()) == []  # staged copy removed once oned has it


def test_create_image_without_upload_dir_is_not_supported(sim):
    with pytest.raises(NotSupported, match="upload_dir"):
        backend(sim).create_image(ImageSpec(name="x", disk_format="raw"), io.BytesIO(b"x"))


def test_an_image_oned_fails_to_copy_is_removed_with_its_staged_file(sim, tmp_path):
    upload = tmp_path / "upload"
    cloud = backend(sim, upload_dir=upload)
    sim.inject(OneFault("error", method="one.image.chmod", code=ACTION, message="not allowed"))
    with pytest.raises(CloudError, match="not allowed"):
        cloud.create_image(ImageSpec(name="half", disk_format="raw"), io.BytesIO(b"x" * 10))
    assert list(upload.iterdir()) == []
    assert all(i.name != "half" for i in sim.cloud.images.values())


def test_an_image_still_copying_is_left_for_the_next_run(sim, tmp_path):
    upload = tmp_path / "upload"
    sim.image_copy_seconds = 30
    cloud = backend(sim, upload_dir=upload, image_ready_timeout=0.2, poll_interval=0.05)
    with pytest.raises(CloudUnavailable, match="still LOCKED"):
        cloud.create_image(ImageSpec(name="slow", disk_format="raw"), io.BytesIO(b"x" * 10))
    assert len(list(upload.iterdir())) == 1  # oned is still reading it
    assert any(i.name == "slow" for i in sim.cloud.images.values())


def test_create_image_failure_removes_the_staged_file(sim, tmp_path):
    upload = tmp_path / "upload"
    cloud = backend(sim, upload_dir=upload, datastore_id=0)  # system datastore: oned refuses
    with pytest.raises(CloudError, match="SYSTEM or FILE datastore"):
        cloud.create_image(ImageSpec(name="x", disk_format="raw"), io.BytesIO(b"x" * 10))
    assert list(upload.iterdir()) == []


def test_update_deactivate_and_delete_an_image(sim):
    cloud = backend(sim)
    image = next(i for i in sim.cloud.images.values() if not i.running_vms)
    image_id = str(image.id)
    image.template["OLD"] = "gone soon"
    updated = cloud.update_image(image_id, {"old": None, "new-key": "v"}, name="renamed", visibility="public")
    assert updated.name == "renamed" and updated.visibility == "public"
    assert "OLD" not in updated.properties and updated.properties["NEW_KEY"] == "v"
    assert "VMCATCHER_EVENT_AD_MPURI" in updated.properties
    cloud.set_image_active(image_id, False)
    assert cloud.get_image(image_id).status == "deactivated"
    assert sim.cloud.images[image.id].state == int(pyone.IMAGE_STATES.DISABLED)
    cloud.set_image_active(image_id, True)
    assert cloud.get_image(image_id).status == "active"
    cloud.delete_image(image_id)
    with pytest.raises(NotFound):
        cloud.get_image(image_id)


def test_an_image_in_use_is_hidden_instead_of_disabled_and_restored(sim):
    cloud = backend(sim)
    used = next(i for i in sim.cloud.images.values() if i.running_vms)
    cloud.set_image_active(str(used.id), False)
    hidden = cloud.get_image(str(used.id))
    assert hidden.status == "deactivated" and hidden.visibility == "private"
    cloud.set_image_active(str(used.id), True)
    restored = cloud.get_image(str(used.id))
    assert restored.status == "active" and restored.visibility == "shared"
    assert "FEDCLOUD_SITE_DEACTIVATED" not in restored.properties


def test_image_in_use_comes_from_running_vms(sim):
    cloud = backend(sim)
    used = next(i for i in sim.cloud.images.values() if i.running_vms)
    unused = next(i for i in sim.cloud.images.values() if not i.running_vms)
    assert cloud.image_in_use(str(used.id)) is True
    assert cloud.image_in_use(str(unused.id)) is False
    with pytest.raises(CloudError, match="in use"):
        cloud.delete_image(str(used.id))


# -- users and groups -----------------------------------------------------------------------------------------
def test_create_update_disable_and_delete_a_managed_user(sim):
    cloud = backend(sim)
    assert {g.name for g in cloud.list_groups()} >= {"oneadmin", "users", "vo0.example.eu"}
    user = cloud.create_user(UserSpec(name="jdoe", groups=["101", "102"], email="j@example.org",
                                      display_name="Jane Doe", x509_dns=["/DC=org/CN=Jane Doe"],
                                      ssh_keys=["ssh-ed25519 AAAA jane"], properties={"eppn": "jdoe@egi.eu"}))
    raw = sim.cloud.users[int(user.id)]
    assert raw.auth_driver == "x509" and raw.password == "/DC=org/CN=Jane\\20Doe"  # as oned's x509 driver wants
    assert raw.template["FEDCLOUD_SITE_MANAGED"] == "yes"
    assert user.groups == ("101", "102") and user.email == "j@example.org" and user.display_name == "Jane Doe"
    assert user.x509_dns == ("/DC=org/CN=Jane Doe",) and user.ssh_keys == ("ssh-ed25519 AAAA jane",)
    assert user.properties == {"EPPN": "jdoe@egi.eu", "FEDCLOUD_SITE_MANAGED": "yes"}
    raw.template["SUNSTONE"] = {"LANG": "en_US"}  # written by someone else: must survive our updates
    updated = cloud.update_user(user.id, UserSpec(name="jdoe", groups=["103", "101"], email="new@example.org",
                                                  x509_dns=["/DC=org/CN=Jane Doe", "/DC=eu/CN=Jane"],
                                                  properties={"orcid": "0000"}))
    assert updated.groups == ("103", "101") and updated.email == "new@example.org"
    assert updated.x509_dns == ("/DC=org/CN=Jane Doe", "/DC=eu/CN=Jane") and updated.ssh_keys == ()
    assert updated.properties == {"ORCID": "0000", "FEDCLOUD_SITE_MANAGED": "yes"}
    assert raw.password == "/DC=org/CN=Jane\\20Doe|/DC=eu/CN=Jane"
    assert raw.template["SUNSTONE"] == {"LANG": "en_US"}
    cloud.set_user_enabled(user.id, False)
    assert not next(u for u in cloud.list_users() if u.id == user.id).enabled
    cloud.delete_user(user.id)
    assert user.id not in {u.id for u in cloud.list_users()}
    with pytest.raises(NotFound):
        cloud.delete_user(user.id)


def test_user_quota_is_set_read_back_and_only_changed_when_it_differs(sim):
    cloud = backend(sim)
    user = cloud.create_user(UserSpec(name="quoted", groups=["100"], x509_dns=["/CN=q"],
                                      quota=Quota(instances=4, cores=8)))
    assert user.quota == Quota(instances=4, cores=8, ram_mb=None)
    assert next(u for u in cloud.list_users() if u.id == user.id).quota == user.quota
    assert next(u for u in cloud.list_users() if u.name == "user1").quota is None  # no limits of its own
    before = cloud.request_count().get("one.user.quota", 0)
    cloud.update_user(user.id, UserSpec(name="quoted", groups=["100"], x509_dns=["/CN=q"], quota=Quota(instances=4)))
    assert cloud.request_count().get("one.user.quota", 0) == before
    updated = cloud.update_user(user.id, UserSpec(name="quoted", groups=["100"], x509_dns=["/CN=q"],
                                                  quota=Quota(instances=6)))
    assert updated.quota == Quota(instances=6, cores=8, ram_mb=None)


def test_dns_are_escaped_for_the_x509_driver_and_read_back_plain():
    assert escape_dn("/DC=org/CN=Jane Doe\tX") == "/DC=org/CN=Jane\\20Doe\\9X"
    assert unescape_dn("/DC=org/CN=Jane\\20Doe") == "/DC=org/CN=Jane Doe"
    assert x509_password(["/CN=a b", "/CN=c"]) == "/CN=a\\20b|/CN=c"


def test_a_dn_holding_the_separator_never_adds_a_dn_to_a_user(sim):
    cloud = backend(sim)
    smuggled = "/DC=org/CN=Mallory|/DC=org/CN=Site Admin"
    before = cloud.request_count().get("one.user.allocate", 0)
    with pytest.raises(BadCloudData, match="contains '\\|'"):
        cloud.create_user(UserSpec(name="mallory", groups=["100"], x509_dns=[smuggled]))
    assert cloud.request_count().get("one.user.allocate", 0) == before  # refused before anything was written
    user = cloud.create_user(UserSpec(name="mallory", groups=["100"], x509_dns=["/DC=org/CN=Mallory"]))
    with pytest.raises(BadCloudData, match="separator"):
        cloud.update_user(user.id, UserSpec(name="mallory", groups=["100"], x509_dns=[smuggled]))
    assert sim.cloud.users[int(user.id)].password == "/DC=org/CN=Mallory"
    assert next(u for u in cloud.list_users() if u.id == user.id).x509_dns == ("/DC=org/CN=Mallory",)


def test_a_user_whose_dns_go_away_loses_certificate_login(sim):
    cloud = backend(sim)
    user = cloud.create_user(UserSpec(name="certless", groups=["100"], x509_dns=["/CN=x y"]))
    assert next(u for u in cloud.list_users() if u.id == user.id).x509_dns == ("/CN=x y",)
    cloud.update_user(user.id, UserSpec(name="certless", groups=["100"]))
    raw = sim.cloud.users[int(user.id)]
    assert raw.auth_driver == "core" and "CN" not in raw.password
    before = cloud.request_count()["one.user.chauth"]
    cloud.update_user(user.id, UserSpec(name="certless", groups=["100"]))
    assert cloud.request_count()["one.user.chauth"] == before


def test_a_user_without_dn_gets_core_auth_and_a_disabled_start(sim):
    user = backend(sim).create_user(UserSpec(name="nodn", groups=["100"], enabled=False))
    raw = sim.cloud.users[int(user.id)]
    assert raw.auth_driver == "core" and len(raw.password) >= 32 and not user.enabled


def test_creating_an_existing_user_is_an_error(sim):
    with pytest.raises(CloudError, match="NAME is already taken"):
        backend(sim).create_user(UserSpec(name="user1", groups=["100"]))


# -- errors and faults ------------------------------------------------------------------------------------------
def test_wrong_credentials_are_an_auth_error(sim):
    with pytest.raises(CloudAuthError, match="couldn't be authenticated"):
        list(backend(sim, password="wrong").list_projects())


@pytest.mark.parametrize("fault, error", [
    (OneFault("error", code=INTERNAL, message="Internal error"), CloudUnavailable),
    (OneFault("error", code=ACTION, message="busy"), CloudError),
    (OneFault("http", status=503), CloudUnavailable),
    (OneFault("http", status=404), CloudError),
    (OneFault("drop"), CloudUnavailable),
    (OneFault("truncate"), CloudUnavailable),
])
def test_faults_map_to_cloud_errors(sim, fault, error):
    cloud = backend(sim)
    fault.method = "one.grouppool.info"
    sim.inject(fault)
    with pytest.raises(error) as info:
        list(cloud.list_projects())
    assert "one.grouppool.info" in str(info.value)
    assert list(cloud.list_projects())  # the next call works again


def test_a_slow_answer_times_out(sim):
    sim.inject(OneFault("delay", method="one.hostpool.info", delay=1.0))
    with pytest.raises(CloudUnavailable, match="no answer within"):
        backend(sim, timeout=0.2).capacity()


def test_a_failing_page_fails_the_listing_instead_of_returning_part_of_it(big_sim):
    big_sim.inject(OneFault("http", method="one.vmpool.infoextended", status=500))
    big_sim.faults[-1].count = 1
    cloud = backend(big_sim, page_size=500)
    listing = cloud.list_vms()
    with pytest.raises(CloudUnavailable):
        list(listing)


def test_request_count_counts_xml_rpc_calls(sim):
    cloud = backend(sim)
    list(cloud.list_projects())
    list(cloud.list_flavors())
    counts = cloud.request_count()
    assert counts["one.grouppool.info"] == 1 and counts["one.templatepool.info"] == 1 and counts["total"] == 2
