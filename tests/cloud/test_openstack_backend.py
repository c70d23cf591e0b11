"""The ``openstack`` backend against the OpenStack simulator, through openstacksdk."""

from __future__ import annotations

import io
import math
import socket
from datetime import datetime, timedelta, timezone
from importlib.metadata import entry_points

import pytest
import yaml

from fedcloud_site.cloud import backend_class, backend_names, open_backend
from fedcloud_site.cloud.base import (
    BadCloudData,
    CloudAuthError,
    CloudError,
    CloudUnavailable,
    ImageSpec,
    NotFound,
    UserSpec,
    VMState,
)
from fedcloud_site.cloud.openstack import MANAGED_ATTRIBUTE, NOVA_STATES, OpenStackBackend, OpenStackSettings
from fedcloud_site.config import load_config
from fedcloud_site.demo.ca import CertificateAuthority
from fedcloud_site.demo.http import server_ssl_context
from fedcloud_site.errors import ConfigError
from fedcloud_site.schema import Duration, Secret
from fedcloud_testing.openstack import (
    ADMIN_PASSWORD,
    NOVA_STATUS_STATES,
    OpenStackSim,
    SimAddress,
    generate,
)
from fedcloud_testing.openstack.model import SimImageMember

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def settings_for(sim: OpenStackSim, **overrides) -> OpenStackSettings:
    values = dict(auth_url=sim.auth_url, username="admin", password=Secret(ADMIN_PASSWORD), project_name="admin",
                  page_size=20, retries=2, retry_delay=Duration(0.01), timeout=Duration(5))
    values.update(overrides)
    return OpenStackSettings(**values)


@pytest.fixture(scope="module")
def sim():
    """Read-only cloud shared by this module: 2 projects x 60 VMs, some deleted."""
    with OpenStackSim(generate(seed=5, n_projects=2, vms_per_project=60, now=NOW)) as server:
        yield server


@pytest.fixture(scope="module")
def backend(sim):
    b = OpenStackBackend(settings_for(sim))
    yield b
    b.close()


@pytest.fixture
def fresh():
    with OpenStackSim(generate(seed=9, n_projects=2, vms_per_project=30, now=NOW)) as server:
        yield server


def pid(sim: OpenStackSim, name: str = "project-0") -> str:
    project = sim.data.find_project(name)
    assert project is not None
    return project.id


# -- plugin and configuration ------------------------------------------------------------------------------
def test_openstack_backend_is_found_through_its_entry_point():
    assert "openstack" in backend_names()
    assert backend_class("openstack") is OpenStackBackend
    declared = {ep.name: ep.value for ep in entry_points(group="fedcloud_site.cloud_backends")}
    if declared:  # installed package (pip install -e .)
        assert declared["openstack"] == "fedcloud_site.cloud.openstack:OpenStackBackend"


def config_text(body: dict) -> str:
    return yaml.safe_dump({"site": {"name": "TEST"}, "cloud": {"backend": "openstack", "openstack": body}})


def test_config_typo_in_cloud_openstack_is_named(write_config):
    path = write_config(config_text({"auth_url": "http://127.0.0.1:5000/v3", "usernme": "a"}))
    with pytest.raises(ConfigError) as failed:
        load_config(path)
    assert failed.value.key == "cloud.openstack.usernme"
    assert "unknown key" in str(failed.value) and "username" in str(failed.value)


@pytest.mark.parametrize("body, problem", [
    ({"username": "a", "password": "b", "project_name": "p"}, "give auth_url (with credentials) or cloud"),
    ({"auth_url": "http://x/v3", "username": "a", "project_name": "p"}, "username and password"),
    ({"auth_url": "http://x/v3", "username": "a", "password": "b"}, "give project_name (or project_id) or system"),
    ({"auth_url": "http://x/v3", "username": "a", "password": "b", "project_name": "p", "system_scope": True},
     "either system_scope or project_name"),
    ({"auth_url": "http://x/v3", "application_credential_id": "i"}, "go together"),
    ({"cloud": "c", "auth_url": "http://x/v3"}, "either cloud or auth_url"),
    ({"auth_url": "http://x/v3", "username": "a", "password": "b", "project_name": "p", "page_size": 0},
     "page_size must be at least 1"),
    ({"auth_url": "http://x/v3", "username": "a", "password": "b", "project_name": "p", "interface": "inside"},
     "expected one of 'public', 'internal', 'admin'"),
])
def test_config_validation_explains_bad_openstack_settings(write_config, body, problem):
    path = write_config(config_text(body))
    with pytest.raises(ConfigError) as failed:
        load_config(path)
    assert str(failed.value).startswith(f"{path}: cloud.openstack")
    assert problem in str(failed.value)


def test_password_may_come_from_a_file_and_is_never_shown(write_config, tmp_path, sim):
    (tmp_path / "pw").write_text(ADMIN_PASSWORD + "\n")
    path = write_config(config_text({"auth_url": sim.auth_url, "username": "admin", "password_file": "pw",
                                     "project_name": "admin"}))
    config = load_config(path)
    assert config.cloud_backend_settings.password == ADMIN_PASSWORD
    assert "password=Secret('********')" in repr(config.cloud_backend_settings)
    backend = open_backend(config)
    assert isinstance(backend, OpenStackBackend)
    assert any(p.name == "project-1" for p in backend.list_projects())


# -- authentication variants ----------------------------------------------------------------------------------
def test_clouds_yaml_entry_is_used(tmp_path, sim):
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(yaml.safe_dump({"clouds": {"sim": {"auth": {
        "auth_url": sim.auth_url, "username": "admin", "password": ADMIN_PASSWORD, "project_name": "admin",
        "user_domain_name": "Default", "project_domain_name": "Default"}, "region_name": "RegionOne"}}}))
    backend = OpenStackBackend(OpenStackSettings(cloud="sim", clouds_yaml=clouds, page_size=50))
    assert len(list(backend.list_vms(pid(sim)))) == sum(
        1 for s in sim.data.servers.values() if s.project_id == pid(sim) and not s.deleted)


def test_unknown_cloud_in_clouds_yaml_is_a_clear_error(tmp_path):
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(yaml.safe_dump({"clouds": {"other": {"auth": {"auth_url": "http://127.0.0.1:9/v3"}}}}))
    with pytest.raises(CloudError, match="cannot set up the OpenStack connection"):
        OpenStackBackend(OpenStackSettings(cloud="missing", clouds_yaml=clouds))


def test_application_credentials_and_system_scope_authenticate(fresh):
    admin = fresh.data.find_user("admin")
    cred = fresh.data.add_app_credential(admin.id, pid(fresh, "admin"), secret="app-secret")
    by_app = OpenStackBackend(settings_for(fresh, username=None, password=None, project_name=None,
                                           application_credential_id=cred.id,
                                           application_credential_secret=Secret("app-secret")))
    system = OpenStackBackend(settings_for(fresh, project_name=None, system_scope=True))
    assert {vm.id for vm in by_app.list_vms()} == {vm.id for vm in system.list_vms()} == {
        s.id for s in fresh.data.servers.values() if not s.deleted}
    assert len(list(system.list_volumes())) == 4  # Cinder without a project in its URL


def test_wrong_password_is_an_auth_error(fresh):
    backend = OpenStackBackend(settings_for(fresh, password=Secret("wrong")))
    with pytest.raises(CloudAuthError, match="Keystone rejected the credentials"):
        list(backend.list_projects())


def test_https_with_the_site_ca_file(tmp_path):
    ca = CertificateAuthority("/DC=org/DC=example/CN=Sim CA")
    host = ca.issue("/DC=org/DC=example/CN=localhost", profile="server")
    paths = host.write(tmp_path / "host")
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem())
    context = server_ssl_context(paths.cert, paths.key)
    with OpenStackSim(generate(seed=1, n_projects=1, vms_per_project=3, now=NOW), ssl_context=context) as server:
        assert server.url.startswith("https://")
        trusted = OpenStackBackend(settings_for(server, cacert=tmp_path / "ca.pem", retries=0))
        assert len(list(trusted.list_vms())) == 3 - sum(s.deleted for s in server.data.servers.values())
        untrusted = OpenStackBackend(settings_for(server, retries=0))
        with pytest.raises(CloudUnavailable):
            list(untrusted.list_projects())
        unchecked = OpenStackBackend(settings_for(server, retries=0, verify=False))
        assert any(p.name == "project-0" for p in unchecked.list_projects())


# -- projects, flavours, capacity ----------------------------------------------------------------------------
def test_projects_carry_custom_properties_and_tags(backend, sim):
    projects = {p.name: p for p in backend.list_projects()}
    assert {"admin", "project-0", "project-1"} <= set(projects)
    assert projects["project-0"].properties == {"egi.VO": "vo0.example.org", "tags": "fedcloud"}
    assert projects["project-1"].properties == {"egi.VO": "vo1.example.org"}
    assert {g.name for g in backend.list_groups()} == set(projects)


def test_projects_carry_their_domain_name_read_in_one_listing(fresh):
    egi = fresh.data.add_domain("EGI")
    fresh.data.add_project("egi-project", domain_id=egi.id)
    backend = OpenStackBackend(settings_for(fresh))
    domains = {p.name: p.domain for p in backend.list_projects()}
    assert domains["project-0"] == "Default" and domains["egi-project"] == "EGI"
    list(backend.list_projects())
    assert fresh.requests["keystone.domains"] == 1 and "keystone.domain" not in fresh.requests


def test_domains_unlisted_are_read_one_by_one_else_their_id_stands(fresh):
    egi = fresh.data.add_domain("EGI")
    other = fresh.data.add_project("egi-project", domain_id=egi.id)
    fresh.data.add_user("alice", password="pw", projects=(pid(fresh), other.id))
    backend = OpenStackBackend(settings_for(fresh, username="alice", password=Secret("pw"), project_name="project-0"))
    domains = {p.name: p.domain for p in backend.list_projects()}
    assert domains == {"project-0": "Default", "egi-project": egi.id}  # a project's own domain, not another one
    list(backend.list_projects())
    assert fresh.requests["keystone.domains"] == 1  # 403 once
    assert fresh.requests["keystone.domain"] == 2  # one per domain, refused or not, then remembered


def test_an_unavailable_domain_listing_fails_the_project_listing_and_is_asked_again(fresh):
    backend = OpenStackBackend(settings_for(fresh, retries=0))
    fresh.inject("status", route="keystone.domains", status=503)
    with pytest.raises(CloudUnavailable, match="list domains"):
        list(backend.list_projects())
    assert {p.domain for p in backend.list_projects()} == {"Default"}
    assert "keystone.domain" not in fresh.requests  # the listing was asked again, not each domain


def test_non_admin_users_see_their_own_projects(fresh):
    fresh.data.add_user("alice", password="pw", projects=(pid(fresh),))
    backend = OpenStackBackend(settings_for(fresh, username="alice", password=Secret("pw"), project_name="project-0"))
    assert [p.name for p in backend.list_projects()] == ["project-0"]


def test_flavors_decode_accelerators_and_benchmarks_including_private_ones(backend):
    flavors = {f.name: f for f in backend.list_flavors()}
    gpu = flavors["g1.a100"]
    assert gpu.public is False and gpu.accelerator is not None
    assert (gpu.accelerator.vendor, gpu.accelerator.model, gpu.accelerator.count) == ("NVIDIA", "A100", 1)
    large = flavors["m1.large"]
    assert (large.benchmark_type, large.benchmark_value) == ("HEPSPEC06", 10.5)
    assert (large.vcpus, large.ram_mb, large.disk_gb, large.ephemeral_gb) == (4, 8192, 80, 20)


def test_flavors_are_read_once_per_backend(fresh):
    backend = OpenStackBackend(settings_for(fresh))
    list(backend.list_flavors())
    list(backend.list_vms())
    list(backend.list_flavors())
    assert fresh.requests["nova.flavors.detail"] == 1 + 1  # one page + the empty page that ends it


def test_old_nova_without_embedded_flavors_or_extra_specs(fresh):
    fresh.nova_max_version = "2.40"
    backend = OpenStackBackend(settings_for(fresh))
    gpu_vm = fresh.data.boot_server(pid(fresh), "u", "g1-a100-id")
    vms = {vm.id: vm for vm in backend.list_vms()}
    assert vms[gpu_vm.id].accelerator is not None and vms[gpu_vm.id].flavor_id == "g1-a100-id"
    assert vms[gpu_vm.id].vcpus == 8 and vms[gpu_vm.id].ram_mb == 65536
    assert fresh.requests["nova.flavor.extra_specs"] == len(fresh.data.flavors)


def test_an_unreadable_flavour_goes_to_on_bad_record_by_name_and_the_others_are_listed(fresh):
    fresh.data.add_flavor("odd-id", "odd.size", vcpus="many", ram=1024, disk=10)  # type: ignore[arg-type]
    backend = OpenStackBackend(settings_for(fresh))
    problems = []
    backend.on_bad_record = problems.append
    listed = {f.id for f in backend.list_flavors()}
    assert listed == set(fresh.data.flavors) - {"odd-id"}
    assert len(problems) == 1
    assert "flavor odd-id (odd.size)" in str(problems[0]) and "many" in str(problems[0])
    assert {f.id for f in backend.list_flavors()} == listed and len(problems) == 2  # told again on every listing
    assert {vm.id for vm in backend.list_vms()} == {s.id for s in fresh.data.servers.values() if not s.deleted}


def test_without_on_bad_record_an_unreadable_flavour_is_an_error_naming_it(fresh):
    backend = OpenStackBackend(settings_for(fresh))
    odd = {"id": "odd-id", "name": "odd.size", "vcpus": 1, "ram": 1024, "disk": 10, "extra_specs": ["a", "list"]}
    fresh.inject("status", route="nova.flavors.detail", status=200, body={"flavors": [odd]})
    fresh.inject("status", route="nova.flavors.detail", status=200, body={"flavors": []})
    with pytest.raises(BadCloudData, match=r"flavor odd-id \(odd.size\): extra specs are not an object"):
        list(backend.list_flavors())


def test_old_nova_servers_of_an_unreadable_flavour_are_bad_records_naming_both(fresh):
    fresh.nova_max_version = "2.40"
    fresh.data.add_flavor("odd-id", "odd.size", vcpus="many", ram=1024, disk=10)  # type: ignore[arg-type]
    odd_vm = fresh.data.boot_server(pid(fresh), "u", "odd-id")
    backend = OpenStackBackend(settings_for(fresh))
    problems = []
    backend.on_bad_record = problems.append
    vms = {vm.id for vm in backend.list_vms()}
    assert odd_vm.id not in vms and len(vms) == sum(1 for s in fresh.data.servers.values() if not s.deleted) - 1
    assert len(problems) == 1
    assert f"server {odd_vm.id}" in str(problems[0]) and "flavor odd-id (odd.size)" in str(problems[0])


def test_private_flavours_carry_the_projects_of_their_access_list(fresh):
    first, second = pid(fresh, "project-0"), pid(fresh, "project-1")
    fresh.data.add_flavor_access("g1-a100-id", second)
    fresh.data.add_flavor_access("g1-a100-id", first)
    fresh.data.add_flavor("closed-id", "closed", 1, 512, 1, is_public=False)
    backend = OpenStackBackend(settings_for(fresh))
    flavors = {f.id: f for f in backend.list_flavors()}
    assert set(flavors["g1-a100-id"].projects) == {first, second}
    assert flavors["closed-id"].projects == ()  # private, no project may use it
    assert all(f.projects is None for f in flavors.values() if f.public)
    private = sum(1 for f in fresh.data.flavors.values() if not f.is_public)
    assert fresh.requests["nova.flavor.access"] == private == 2  # one request per private flavour
    assert backend.request_count()["by_endpoint"]["GET /compute/v2.1/flavors/{id}/os-flavor-access"] == 2
    fresh.data.add_flavor_access("closed-id", first)
    assert {f.id: f.projects for f in backend.list_flavors()}["closed-id"] == ()  # cached per backend
    assert fresh.requests["nova.flavor.access"] == 2
    assert {f.id: f.projects for f in OpenStackBackend(settings_for(fresh)).list_flavors()}["closed-id"] == (first,)


def test_listing_vms_reads_no_flavour_access_list(fresh):
    backend = OpenStackBackend(settings_for(fresh))
    list(backend.list_vms())
    assert "nova.flavor.access" not in fresh.requests


def test_credentials_that_may_not_read_access_lists_leave_projects_untold_after_one_try(fresh):
    own = pid(fresh)
    fresh.data.add_flavor_access("g1-a100-id", own)
    fresh.data.add_flavor("second-gpu-id", "g2", 8, 4096, 10, is_public=False, access={own})
    fresh.data.add_user("alice", password="pw", projects=(own,))
    backend = OpenStackBackend(settings_for(fresh, username="alice", password=Secret("pw"), project_name="project-0"))
    private = {f.id: f for f in backend.list_flavors() if not f.public}
    assert set(private) == {"g1-a100-id", "second-gpu-id"}  # the ones the project may use
    assert all(f.projects is None for f in private.values())
    assert fresh.requests["nova.flavor.access"] == 1  # a 403, then no more asking


def test_an_unreadable_access_list_makes_its_flavour_a_bad_record(fresh):
    backend = OpenStackBackend(settings_for(fresh))
    problems = []
    backend.on_bad_record = problems.append
    fresh.inject("status", route="nova.flavor.access", status=200,
                 body={"flavor_access": [{"flavor_id": "g1-a100-id"}]})
    flavors = {f.id for f in backend.list_flavors()}
    assert "g1-a100-id" not in flavors and flavors == set(fresh.data.flavors) - {"g1-a100-id"}
    assert len(problems) == 1 and "flavor g1-a100-id (g1.a100)" in str(problems[0])
    assert "tenant_id" in str(problems[0])


def test_capacity_sums_hypervisors(backend, sim):
    capacity = backend.capacity()
    live = [s for s in sim.data.servers.values() if not s.deleted and s.host]
    assert capacity.total_vcpus == sum(h.vcpus for h in sim.data.hypervisors.values())
    assert capacity.used_vcpus == sum(s.flavor["vcpus"] for s in live)
    assert capacity.running_vms == len(live)
    assert (capacity.hypervisor, capacity.hypervisor_version) == ("QEMU", "8.2.0")


def test_quota_of_a_project(backend, sim):
    quota = backend.quota(pid(sim))
    assert (quota.instances, quota.cores, quota.ram_mb) == (70, 280, 573440)


# -- VMs ---------------------------------------------------------------------------------------------------------
def test_list_vms_returns_the_live_servers_of_every_project(backend, sim):
    vms = {vm.id: vm for vm in backend.list_vms()}
    assert set(vms) == {s.id for s in sim.data.servers.values() if not s.deleted}
    assert VMState.DELETED not in {vm.state for vm in vms.values()}


def test_vm_records_map_nova_fields(backend, sim):
    server = next(s for s in sim.data.servers.values() if s.status == "ACTIVE" and s.image_id)
    vm = next(v for v in backend.list_vms(server.project_id) if v.id == server.id)
    assert (vm.project_id, vm.user_id, vm.user_name) == (server.project_id, server.user_id,
                                                         sim.data.users[server.user_id].name)
    assert vm.state is VMState.RUNNING and vm.status == "ACTIVE"
    assert vm.created_at == server.created and vm.updated_at == server.updated and vm.ended_at is None
    assert (vm.vcpus, vm.ram_mb, vm.disk_gb) == (server.flavor["vcpus"], server.flavor["ram"],
                                                 server.flavor["disk"] + server.flavor["ephemeral"])
    assert vm.flavor_id == server.flavor["id"] and vm.image_id == server.image_id and vm.host == server.host


def test_floating_and_public_addresses(fresh):
    project_id = pid(fresh)
    server = fresh.data.boot_server(project_id, "u", "m1-small-id",
                                    addresses=[SimAddress("private", "10.0.0.9"),
                                               SimAddress("public", "2001:db8::9", 6)])
    fresh.data.add_floating_ip("198.51.100.200", project_id, server_id=server.id)
    vm = next(v for v in OpenStackBackend(settings_for(fresh)).list_vms(project_id) if v.id == server.id)
    by_address = {a.address: a for a in vm.addresses}
    assert by_address["198.51.100.200"].floating and by_address["198.51.100.200"].public
    assert by_address["2001:db8::9"].public and by_address["2001:db8::9"].version == 6  # external network
    assert not by_address["10.0.0.9"].public
    assert vm.public_ip_count == 2


def test_active_since_adds_servers_deleted_after_it(backend, sim):
    since = NOW - timedelta(days=30)
    vms = {vm.id: vm for vm in backend.list_vms(active_since=since)}
    deleted = {s.id for s in sim.data.servers.values() if s.deleted and s.terminated_at >= since}
    live = {s.id for s in sim.data.servers.values() if not s.deleted}
    assert deleted and set(vms) == live | deleted
    gone = vms[next(iter(deleted))]
    assert gone.state is VMState.DELETED and gone.ended_at is not None and gone.ended_at >= since


def test_list_vms_of_one_project(backend, sim):
    project_id = pid(sim, "project-1")
    assert {vm.project_id for vm in backend.list_vms(project_id)} == {project_id}


@pytest.mark.parametrize("n_vms", [100, 300])
def test_requests_grow_with_pages_not_vms(n_vms):
    data = generate(seed=2, n_projects=1, vms_per_project=n_vms, deleted_fraction=0.0, now=NOW)
    with OpenStackSim(data) as server:
        backend = OpenStackBackend(settings_for(server, page_size=50))
        assert len(list(backend.list_vms())) == n_vms
        assert server.requests["nova.servers.detail"] == math.ceil(n_vms / 50) + 1
        assert "nova.server" not in server.requests
        by_endpoint = backend.request_count()["by_endpoint"]
        assert by_endpoint["GET /compute/v2.1/servers/detail"] == math.ceil(n_vms / 50) + 1
        assert backend.request_count()["requests"] < 20


def test_nova_status_table_covers_every_simulated_status(fresh):
    assert set(NOVA_STATUS_STATES) <= set(NOVA_STATES)
    expected = {"ACTIVE": VMState.RUNNING, "BUILD": VMState.PENDING, "PAUSED": VMState.PAUSED,
                "SUSPENDED": VMState.SUSPENDED, "SHUTOFF": VMState.STOPPED, "SHELVED_OFFLOADED": VMState.STOPPED,
                "ERROR": VMState.ERROR, "RESCUE": VMState.RUNNING, "UNKNOWN": VMState.UNKNOWN}
    servers = {status: fresh.data.boot_server(pid(fresh), "u", "m1-small-id", name=status.lower())
               for status in expected}
    for status, server in servers.items():
        server.status = status
    fresh.data.touch()
    states = {vm.id: vm.state for vm in OpenStackBackend(settings_for(fresh)).list_vms(pid(fresh))}
    assert {status: states[server.id] for status, server in servers.items()} == expected


def test_life_cycle_between_runs(fresh):
    backend = OpenStackBackend(settings_for(fresh))
    project_id = pid(fresh)
    fresh.data.set_now(datetime(2026, 11, 30, 22, 0, tzinfo=timezone.utc))
    server = fresh.data.boot_server(project_id, "u", "m1-small-id")
    first = {vm.id: vm for vm in backend.list_vms(project_id)}
    assert first[server.id].state is VMState.RUNNING
    fresh.data.advance(hours=1)
    fresh.data.set_server_status(server.id, "SUSPENDED")
    assert {vm.id: vm for vm in backend.list_vms(project_id)}[server.id].state is VMState.SUSPENDED
    fresh.data.advance(hours=2)  # into December
    fresh.data.delete_server(server.id)
    assert server.id not in {vm.id for vm in backend.list_vms(project_id)}
    month_start = datetime(2026, 12, 1, tzinfo=timezone.utc)
    ended = {vm.id: vm for vm in backend.list_vms(project_id, active_since=month_start)}[server.id]
    assert ended.state is VMState.DELETED and ended.ended_at == datetime(2026, 12, 1, 1, 0, tzinfo=timezone.utc)


def bad_servers_page(server_record: dict) -> dict:
    return {"servers": [server_record]}


@pytest.mark.parametrize("change, problem", [
    ({"created": None}, "missing created"),
    ({"created": "last tuesday"}, "created is not a time"),
    ({"flavor": "m1.small"}, "flavor is not an object"),
    ({"addresses": {"net": [{"addr": "not-an-ip"}]}}, "bad address"),
])
def test_malformed_servers_are_reported_with_their_id(fresh, change, problem):
    backend = OpenStackBackend(settings_for(fresh, page_size=1000))
    record = {"id": "0f0f0f0f-0000-4000-8000-000000000001", "name": "odd", "status": "ACTIVE",
              "tenant_id": pid(fresh), "user_id": "u", "created": "2026-11-01T00:00:00Z",
              "updated": "2026-11-01T00:00:00Z", "flavor": {"vcpus": 1, "ram": 512, "disk": 1, "ephemeral": 0,
                                                              "original_name": "m1.tiny", "extra_specs": {}},
              "addresses": {}}
    record.update(change)
    fresh.inject("status", route="nova.servers.detail", status=200, body=bad_servers_page(record))
    with pytest.raises(BadCloudData) as failed:
        list(backend.list_vms())
    assert "server 0f0f0f0f-0000-4000-8000-000000000001" in str(failed.value) and problem in str(failed.value)


def test_image_in_use_asks_once(fresh):
    backend = OpenStackBackend(settings_for(fresh))
    used = next(s.image_id for s in fresh.data.servers.values() if s.image_id and not s.deleted)
    unused = fresh.data.add_image("unused", pid(fresh, "admin")).id
    fresh.reset_counts()
    assert backend.image_in_use(used) is True
    assert backend.image_in_use(unused) is False
    assert fresh.requests["nova.servers"] == 2


# -- floating IPs and volumes ---------------------------------------------------------------------------------
def test_floating_ips_of_a_project(backend, sim):
    project_id = pid(sim)
    ips = list(backend.list_floating_ips(project_id))
    expected = {f.id: f for f in sim.data.floating_ips.values() if f.project_id == project_id}
    assert {ip.id for ip in ips} == set(expected)
    assert {ip.attached for ip in ips} == {True, False}
    assert all(ip.version == 4 and ip.created_at is not None for ip in ips)
    assert len(list(backend.list_floating_ips())) == len(sim.data.floating_ips)


def test_volumes_with_deleted_ones_since_a_date(fresh):
    backend = OpenStackBackend(settings_for(fresh))
    project_id = pid(fresh)
    volume = fresh.data.add_volume("scratch", project_id, "u", 20, created=NOW - timedelta(days=5))
    live = {v.id: v for v in backend.list_volumes(project_id)}
    assert live[volume.id].size_gb == 20 and live[volume.id].project_id == project_id
    fresh.data.set_now(NOW)
    fresh.data.delete_volume(volume.id)
    assert volume.id not in {v.id for v in backend.list_volumes(project_id)}
    since = {v.id: v for v in backend.list_volumes(project_id, active_since=NOW - timedelta(days=1))}
    assert since[volume.id].deleted_at == NOW


# -- images --------------------------------------------------------------------------------------------------------
def test_images_with_properties(backend, sim):
    images = {i.name: i for i in backend.list_images()}
    assert len(images) == len(sim.data.images)
    first = images["image-0"]
    assert first.properties["vmcatcher_event_ad_mpuri"].startswith("https://appdb.egi.eu/")
    assert first.visibility == "public" and first.size == 1 << 30 and first.created_at is not None
    assert list(backend.list_images(owner="nobody")) == []


def shared_image(sim: OpenStackSim, accepted=(), pending=()):
    image = sim.data.add_image("shared one", pid(sim, "admin"), visibility="shared")
    for project_id, status in [(p, "accepted") for p in accepted] + [(p, "pending") for p in pending]:
        image.members[project_id] = SimImageMember(project_id, status, NOW, NOW)
    return image


def test_listing_images_reads_no_members_until_a_caller_uses_them(fresh):
    first, second = pid(fresh, "project-0"), pid(fresh, "project-1")
    shared = shared_image(fresh, accepted=[first], pending=[second])
    other = shared_image(fresh, accepted=[second])
    backend = OpenStackBackend(settings_for(fresh))
    images = {i.id: i for i in backend.list_images()}
    assert len(images) == len(fresh.data.images) and "glance.members" not in fresh.requests
    assert first in images[shared.id].members and second not in images[shared.id].members  # accepted ones only
    assert images[shared.id].members == (first,) and fresh.requests["glance.members"] == 1  # read once
    assert images[other.id].members == (second,) and fresh.requests["glance.members"] == 2
    assert all(i.members == () for i in images.values() if i.visibility != "shared")
    assert fresh.requests["glance.members"] == 2  # images that are not shared have none to read


def test_members_of_an_image_deleted_since_the_listing_are_none(fresh):
    image = shared_image(fresh, accepted=[pid(fresh)])
    backend = OpenStackBackend(settings_for(fresh))
    listed = backend.get_image(image.id)
    del fresh.data.images[image.id]
    assert listed.members == ()


def test_a_failed_member_read_is_raised_where_members_are_used(fresh):
    image = shared_image(fresh, accepted=[pid(fresh)])
    backend = OpenStackBackend(settings_for(fresh, retries=0))
    listed = next(i for i in backend.list_images() if i.id == image.id)
    fresh.inject("status", route="glance.members", status=503)
    with pytest.raises(CloudUnavailable, match=f"members of image {image.id}"):
        _ = pid(fresh) in listed.members
    assert pid(fresh) in listed.members  # asked again on the next use


def test_register_update_deactivate_and_delete_an_image(fresh):
    backend = OpenStackBackend(settings_for(fresh))
    project_id = pid(fresh)
    payload = b"qcow2-bytes" * 50_000
    spec = ImageSpec(name="EGI Ubuntu", disk_format="qcow2", visibility="shared", min_ram_mb=512,
                     properties={"ad:mpuri": "https://appdb/1", "os_distro": "ubuntu"}, share_with=[project_id])
    image = backend.create_image(spec, io.BytesIO(payload))
    assert image.status == "active" and image.size == len(payload) and image.members == (project_id,)
    assert image.properties == {"ad:mpuri": "https://appdb/1", "os_distro": "ubuntu"} and image.min_ram_mb == 512
    assert b"".join(backend.iter_image_data(image.id)) == payload
    updated = backend.update_image(image.id, {"os_distro": None, "os_version": "24.04"}, name="EGI Ubuntu 24")
    assert updated.name == "EGI Ubuntu 24" and updated.properties == {"ad:mpuri": "https://appdb/1",
                                                                      "os_version": "24.04"}
    assert backend.update_image(image.id, {"never-there": None}).properties == updated.properties
    backend.set_image_active(image.id, False)
    assert backend.get_image(image.id).status == "deactivated"
    backend.set_image_active(image.id, True)
    backend.unshare_image(image.id, project_id)
    assert backend.get_image(image.id).members == ()
    backend.delete_image(image.id)
    with pytest.raises(NotFound):
        backend.get_image(image.id)


def test_failed_upload_leaves_no_image_behind(fresh):
    backend = OpenStackBackend(settings_for(fresh, retries=0))
    fresh.inject("status", route="glance.image.upload", status=500, count=5)
    before = set(fresh.data.images)
    with pytest.raises(CloudUnavailable, match="upload image"):
        backend.create_image(ImageSpec(name="broken", disk_format="raw"), io.BytesIO(b"data"))
    assert set(fresh.data.images) == before
    assert fresh.requests["glance.image.upload"] == 1  # a consumed stream is never sent again (empty)


def test_protected_images_are_not_deleted(fresh):
    backend = OpenStackBackend(settings_for(fresh))
    image = fresh.data.add_image("keep", pid(fresh, "admin"), protected=True)
    with pytest.raises(CloudError, match="cannot be deleted"):
        backend.delete_image(image.id)
    assert image.id in fresh.data.images


# -- users ------------------------------------------------------------------------------------------------------------
def test_users_are_created_updated_disabled_and_deleted_with_the_managed_marker(fresh):
    backend = OpenStackBackend(settings_for(fresh))
    p0, p1 = pid(fresh, "project-0"), pid(fresh, "project-1")
    spec = UserSpec(name="egi-user-1", groups=[p0], email="u1@example.org", display_name="User One",
                    x509_dns=["/DC=org/CN=User One"], ssh_keys=["ssh-ed25519 AAAA u1"], properties={"eppn": "u1@egi"})
    user = backend.create_user(spec)
    assert user.groups == (p0,) and user.properties == {"eppn": "u1@egi", MANAGED_ATTRIBUTE: "true"}
    raw = fresh.data.users[user.id]
    assert raw.extra[MANAGED_ATTRIBUTE] is True and raw.extra["x509_dns"] == ["/DC=org/CN=User One"]
    listed = {u.id: u for u in backend.list_users()}[user.id]
    assert listed == user
    changed = backend.update_user(user.id, UserSpec(name="egi-user-1", groups=[p1], email="new@example.org"))
    assert changed.groups == (p1,) and changed.email == "new@example.org" and changed.x509_dns == ()
    assert {u.id: u for u in backend.list_users()}[user.id].properties == {MANAGED_ATTRIBUTE: "true"}
    backend.set_user_enabled(user.id, False)
    assert {u.id: u for u in backend.list_users()}[user.id].enabled is False
    backend.delete_user(user.id)
    assert user.id not in fresh.data.users


def test_users_we_do_not_manage_are_never_touched(fresh):
    backend = OpenStackBackend(settings_for(fresh))
    other = fresh.data.add_user("local-admin", projects=(pid(fresh),))
    with pytest.raises(CloudError, match="not managed by fedcloud-site"):
        backend.delete_user(other.id)
    with pytest.raises(CloudError, match="not managed"):
        backend.set_user_enabled(other.id, False)
    with pytest.raises(CloudError, match="not managed"):
        backend.update_user(other.id, UserSpec(name="local-admin", groups=[]))
    assert fresh.data.users[other.id].enabled


def test_user_names_of_vms_come_from_one_keystone_listing(fresh):
    backend = OpenStackBackend(settings_for(fresh))
    vms = list(backend.list_vms())
    assert all(vm.user_name for vm in vms)
    assert fresh.requests["keystone.users"] == 1 and "keystone.user" not in fresh.requests


# -- faults -----------------------------------------------------------------------------------------------------------
def test_transient_server_errors_are_retried(fresh):
    backend = OpenStackBackend(settings_for(fresh))
    fresh.inject("status", route="nova.servers.detail", status=503, count=2)
    assert len(list(backend.list_vms())) == sum(1 for s in fresh.data.servers.values() if not s.deleted)


def test_persistent_server_errors_are_a_clear_unavailable_error(fresh):
    backend = OpenStackBackend(settings_for(fresh, retries=1))
    fresh.inject("status", route="nova.servers.detail", status=500, count=10)
    with pytest.raises(CloudUnavailable, match=r"list servers of all projects: the cloud answered 500"):
        list(backend.list_vms())


def test_expired_token_mid_listing_triggers_a_new_login(fresh):
    backend = OpenStackBackend(settings_for(fresh, page_size=5))
    listing = backend.list_vms()
    first = [next(listing) for _ in range(6)]
    fresh.expire_tokens()
    rest = list(listing)
    assert len(first) + len(rest) == sum(1 for s in fresh.data.servers.values() if not s.deleted)
    assert fresh.requests["keystone.auth.tokens.issue"] == 2


def test_slow_answers_beyond_the_timeout_are_retried_then_reported(fresh):
    backend = OpenStackBackend(settings_for(fresh, timeout=Duration(0.3), retries=1))
    list(backend.list_flavors())
    fresh.inject("delay", route="nova.servers.detail", delay=0.6, count=1)
    assert len(list(backend.list_vms())) > 0
    fresh.inject("delay", route="nova.servers.detail", delay=0.6, count=5)
    with pytest.raises(CloudUnavailable, match="cannot reach the cloud"):
        list(backend.list_vms())
    fresh.clear_faults()


def test_a_cut_body_is_retried_and_nothing_is_lost(fresh):
    backend = OpenStackBackend(settings_for(fresh, page_size=7))
    fresh.inject("truncate", route="nova.servers.detail", count=1)
    assert len(list(backend.list_vms())) == sum(1 for s in fresh.data.servers.values() if not s.deleted)
    fresh.inject("truncate", route="nova.servers.detail", count=10)
    with pytest.raises(CloudUnavailable, match="broken answer"):
        list(backend.list_vms())
    fresh.clear_faults()


def test_a_page_cut_short_by_the_server_loses_no_vm(fresh):
    backend = OpenStackBackend(settings_for(fresh, page_size=10))
    fresh.short_pages("nova.servers.detail", count=2)
    assert len(list(backend.list_vms())) == sum(1 for s in fresh.data.servers.values() if not s.deleted)


def test_a_cloud_that_repeats_a_full_page_is_detected(fresh):
    backend = OpenStackBackend(settings_for(fresh, page_size=2))
    page = {"servers": [{"id": "a"}, {"id": "b"}]}
    fresh.inject("status", route="nova.servers.detail", status=200, body=page, count=2)
    with pytest.raises(BadCloudData, match="repeats a full page"):
        for _ in backend._server_pages({}, "list servers"):
            pass


def test_a_service_that_ignores_paging_is_read_once(fresh):
    backend = OpenStackBackend(settings_for(fresh, page_size=50))
    everything = {"floatingips": [{"id": f"f{i}", "floating_ip_address": f"192.0.2.{i}", "project_id": "p"}
                                  for i in range(3)]}
    fresh.inject("status", route="neutron.floatingips", status=200, body=everything, count=5)
    assert [ip.id for ip in backend.list_floating_ips()] == ["f0", "f1", "f2"]
    assert fresh.requests["neutron.floatingips"] == 2


def test_an_unreachable_cloud_is_unavailable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = OpenStackBackend(OpenStackSettings(auth_url=f"http://127.0.0.1:{port}/v3", username="a",
                                                 password=Secret("b"), project_name="p", retries=0))
    with pytest.raises(CloudUnavailable):
        list(backend.list_projects())


def test_missing_image_is_not_found(backend):
    with pytest.raises(NotFound):
        backend.get_image("00000000-0000-4000-8000-000000000000")


def test_project_scoped_credentials_list_their_own_project_only(fresh):
    own, other = pid(fresh, "project-0"), pid(fresh, "project-1")
    fresh.data.add_user("reader", password="pw", projects=(own,), role="reader")
    backend = OpenStackBackend(settings_for(fresh, username="reader", password=Secret("pw"), project_name="project-0"))
    expected = {s.id for s in fresh.data.servers.values() if s.project_id == own and not s.deleted}
    assert {vm.id for vm in backend.list_vms(own)} == expected
    assert {vm.id for vm in backend.list_vms()} == expected
    assert all(vm.user_name is None for vm in backend.list_vms(own))  # Keystone users are not readable
    with pytest.raises(CloudAuthError, match="may not list other projects"):
        list(OpenStackBackend(settings_for(fresh, username="reader", password=Secret("pw"),
                                           project_name="project-0")).list_vms(other))


def test_bad_records_go_to_on_bad_record_and_the_listing_goes_on(fresh):
    backend = OpenStackBackend(settings_for(fresh, page_size=1000))
    problems = []
    backend.on_bad_record = problems.append
    good = {"id": "0f0f0f0f-0000-4000-8000-000000000002", "name": "ok", "status": "ACTIVE", "tenant_id": "p",
            "user_id": "u", "created": "2026-11-01T00:00:00Z", "addresses": {},
            "flavor": {"vcpus": 1, "ram": 512, "disk": 1, "ephemeral": 0, "original_name": "x", "extra_specs": {}}}
    bad = dict(good, id="0f0f0f0f-0000-4000-8000-000000000003", created="soon")
    fresh.inject("status", route="nova.servers.detail", status=200, body={"servers": [bad, good]})
    fresh.inject("status", route="nova.servers.detail", status=200, body={"servers": []})  # the page after
    assert [vm.id for vm in backend.list_vms()] == [good["id"]]
    assert len(problems) == 1 and bad["id"] in str(problems[0])
    fresh.inject("status", route="neutron.floatingips", status=200, body={"floatingips": [
        {"id": "f1", "floating_ip_address": "nope", "project_id": "p"},
        {"id": "f2", "floating_ip_address": "192.0.2.7", "project_id": "p"}]})
    fresh.inject("status", route="neutron.floatingips", status=200, body={"floatingips": []})
    assert [ip.id for ip in backend.list_floating_ips()] == ["f2"]
    assert "floating IP f1" in str(problems[1])


def test_a_keystone_list_truncated_by_list_limit_is_an_error_not_a_short_list():
    with OpenStackSim(generate(seed=1, n_projects=3, vms_per_project=1, now=NOW), keystone_list_limit=2) as server:
        backend = OpenStackBackend(settings_for(server))
        with pytest.raises(BadCloudData, match="truncated"):
            list(backend.list_projects())
