"""The OpenStack simulator speaks Keystone v3, Nova, Glance v2, Neutron and Cinder as the real services do.

Driven through openstacksdk (the client our backend uses) and through plain ``requests``
calls shaped like keystoneauth/novaclient ones.
"""

from __future__ import annotations

import hashlib
import io
from datetime import datetime, timedelta, timezone
from pathlib import Path

import openstack.exceptions
import pytest
import requests

from fedcloud_testing.openstack import (
    ADMIN_PASSWORD,
    OpenStackSim,
    SimAddress,
    from_site,
    generate,
)

REPO = Path(__file__).resolve().parents[2]
DEMO_SITE = REPO / "etc" / "fedcloud-site" / "demo-site.yaml"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def sim():
    """A small generated cloud shared by the read-only tests of this module."""
    with OpenStackSim(generate(seed=7, n_projects=2, vms_per_project=25, now=NOW)) as server:
        yield server


@pytest.fixture
def fresh():
    """A cloud of its own for tests that change data or inject faults."""
    with OpenStackSim(generate(seed=3, n_projects=2, vms_per_project=12, now=NOW)) as server:
        yield server


def project(sim: OpenStackSim, name: str = "project-0") -> str:
    found = sim.data.find_project(name)
    assert found is not None
    return found.id


def token_for(sim: OpenStackSim, scope=None, user="admin", password=ADMIN_PASSWORD) -> requests.Response:
    body = {"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"name": user, "domain": {"name": "Default"}, "password": password}}}}}
    if scope is not None:
        body["auth"]["scope"] = scope
    return requests.post(sim.auth_url + "/auth/tokens", json=body, timeout=5)


def admin_headers(sim: OpenStackSim, **extra: str) -> dict:
    response = token_for(sim, {"project": {"name": "admin", "domain": {"name": "Default"}}})
    return dict({"X-Auth-Token": response.headers["X-Subject-Token"]}, **extra)


# -- Keystone ------------------------------------------------------------------------------------
def test_keystone_version_discovery_offers_v3_at_the_root(sim):
    root = requests.get(sim.url + "/", timeout=5)
    assert root.status_code == 300
    assert root.json()["versions"]["values"][0]["links"][0]["href"] == sim.url + "/v3/"
    assert requests.get(sim.url + "/v3", timeout=5).json()["version"]["id"].startswith("v3.")


def test_password_token_carries_a_catalog_pointing_at_the_simulator(sim):
    response = token_for(sim, {"project": {"name": "admin", "domain": {"name": "Default"}}})
    assert response.status_code == 201
    token = response.json()["token"]
    assert response.headers["X-Subject-Token"]
    assert token["project"]["name"] == "admin" and {r["name"] for r in token["roles"]} == {"admin"}
    urls = {entry["type"]: entry["endpoints"][0]["url"] for entry in token["catalog"]}
    assert urls["compute"] == sim.url + "/compute/v2.1"
    assert urls["image"] == sim.url + "/image"
    assert urls["volumev3"] == f"{sim.url}/volume/v3/{token['project']['id']}"
    assert {"identity", "network", "block-storage", "placement"} <= set(urls)


def test_system_and_domain_scopes_and_unscoped_tokens(sim):
    system = token_for(sim, {"system": {"all": True}}).json()["token"]
    assert system["system"] == {"all": True}
    assert {e["type"]: e["endpoints"][0]["url"] for e in system["catalog"]}["volumev3"] == sim.url + "/volume/v3"
    assert "catalog" not in token_for(sim).json()["token"]  # unscoped: no catalog
    assert token_for(sim, {"domain": {"id": "default"}}).status_code == 401  # no role on the domain


def test_wrong_password_and_unknown_project_are_refused(sim):
    assert token_for(sim, password="wrong").status_code == 401
    refused = token_for(sim, {"project": {"name": "nope", "domain": {"name": "Default"}}})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == 401


def test_application_credential_and_token_rescoping(fresh):
    admin = fresh.data.find_user("admin")
    admin_project = project(fresh, "admin")
    cred = fresh.data.add_app_credential(admin.id, admin_project, secret="s3cret")
    body = {"auth": {"identity": {"methods": ["application_credential"],
                                  "application_credential": {"id": cred.id, "secret": "s3cret"}}}}
    issued = requests.post(fresh.auth_url + "/auth/tokens", json=body, timeout=5)
    assert issued.status_code == 201 and issued.json()["token"]["project"]["id"] == admin_project
    body["auth"]["identity"]["application_credential"]["secret"] = "bad"
    assert requests.post(fresh.auth_url + "/auth/tokens", json=body, timeout=5).status_code == 401
    fresh.data.grant(admin.id, "member", project_id=project(fresh))
    rescope = {"auth": {"identity": {"methods": ["token"], "token": {"id": issued.headers["X-Subject-Token"]}},
                        "scope": {"project": {"id": project(fresh)}}}}
    rescoped = requests.post(fresh.auth_url + "/auth/tokens", json=rescope, timeout=5)
    assert rescoped.json()["token"]["project"]["id"] == project(fresh)


def test_token_validation_and_revocation(fresh):
    headers = admin_headers(fresh)
    subject = token_for(fresh, {"system": {"all": True}}).headers["X-Subject-Token"]
    check = requests.get(fresh.auth_url + "/auth/tokens", headers=dict(headers, **{"X-Subject-Token": subject}),
                         timeout=5)
    assert check.status_code == 200 and check.json()["token"]["system"] == {"all": True}
    fresh.expire_tokens()
    assert requests.get(fresh.auth_url + "/projects", headers=headers, timeout=5).status_code == 401


def test_projects_are_listed_with_tags_and_custom_properties(sim):
    conn = sim.connect()
    tagged = list(conn.identity.projects(tags="fedcloud"))
    assert [p.name for p in tagged] == ["project-0"]
    raw = requests.get(sim.auth_url + "/projects", params={"name": "project-1"}, headers=admin_headers(sim),
                       timeout=5).json()["projects"][0]
    assert raw["egi.VO"] == "vo1.example.org" and raw["tags"] == []


def test_keystone_users_are_created_updated_and_deleted_through_openstacksdk(fresh):
    conn = fresh.connect()
    user = conn.identity.create_user(name="jdoe", email="j@example.org", domain_id="default", enabled=True)
    assert conn.identity.get_user(user.id).email == "j@example.org"
    conn.identity.update_user(user, is_enabled=False)
    assert conn.identity.get_user(user.id).is_enabled is False
    assert [u.name for u in conn.identity.users(name="jdoe")] == ["jdoe"]
    conn.identity.delete_user(user)
    with pytest.raises(openstack.exceptions.NotFoundException):
        conn.identity.get_user(user.id)


def test_keystone_keeps_custom_user_attributes_but_rejects_unknown_options(fresh):
    headers = admin_headers(fresh)
    created = requests.post(fresh.auth_url + "/users", headers=headers, timeout=5,
                            json={"user": {"name": "x", "managed_by": "us", "x509_dns": ["/CN=x"]}})
    assert created.status_code == 201 and created.json()["user"]["managed_by"] == "us"
    bad = requests.patch(f"{fresh.auth_url}/users/{created.json()['user']['id']}", headers=headers, timeout=5,
                         json={"user": {"options": {"no_such_option": True}}})
    assert bad.status_code == 400 and "no_such_option" in bad.json()["error"]["message"]
    duplicate = requests.post(fresh.auth_url + "/users", headers=headers, json={"user": {"name": "x"}}, timeout=5)
    assert duplicate.status_code == 409


def test_role_assignments_and_grants(fresh):
    headers = admin_headers(fresh)
    user = fresh.data.add_user("carol")
    member = fresh.data.role_id("member")
    url = f"{fresh.auth_url}/projects/{project(fresh)}/users/{user.id}/roles/{member}"
    assert requests.put(url, headers=headers, timeout=5).status_code == 204
    listed = requests.get(fresh.auth_url + "/role_assignments", params={"user.id": user.id}, headers=headers,
                          timeout=5).json()["role_assignments"]
    assert listed == [{"role": {"id": member}, "user": {"id": user.id},
                       "scope": {"project": {"id": project(fresh)}}, "links": {"assignment": url}}]
    assert requests.delete(url, headers=headers, timeout=5).status_code == 204
    assert requests.head(url, headers=headers, timeout=5).status_code == 404


def test_expired_tokens_make_openstacksdk_authenticate_again(fresh):
    conn = fresh.connect()
    assert len(list(conn.compute.flavors())) > 0
    fresh.expire_tokens()
    assert len(list(conn.compute.flavors())) > 0
    assert fresh.requests["keystone.auth.tokens.issue"] == 2


# -- Nova --------------------------------------------------------------------------------------------
def test_nova_reports_its_microversion_range_and_echoes_the_chosen_one(sim):
    version = requests.get(sim.url + "/compute/v2.1", timeout=5).json()["version"]
    assert (version["min_version"], version["version"]) == ("2.1", "2.96")
    response = requests.get(sim.url + "/compute/v2.1/flavors", timeout=5,
                            headers=admin_headers(sim, **{"OpenStack-API-Version": "compute 2.61"}))
    assert response.headers["OpenStack-API-Version"] == "compute 2.61"
    assert response.headers["X-OpenStack-Nova-API-Version"] == "2.61"
    too_new = requests.get(sim.url + "/compute/v2.1/flavors", timeout=5,
                           headers=admin_headers(sim, **{"X-OpenStack-Nova-API-Version": "2.200"}))
    assert too_new.status_code == 406


def test_servers_page_with_limit_marker_and_next_links(sim):
    headers = admin_headers(sim)
    url = sim.url + "/compute/v2.1/servers/detail"
    first = requests.get(url, params={"all_tenants": "1", "limit": 10}, headers=headers, timeout=5).json()
    assert len(first["servers"]) == 10
    following = first["servers_links"][0]
    assert following["rel"] == "next" and f"marker={first['servers'][-1]['id']}" in following["href"]
    second = requests.get(following["href"], headers=headers, timeout=5).json()
    assert not {s["id"] for s in first["servers"]} & {s["id"] for s in second["servers"]}
    created = [s["created"] for s in first["servers"] + second["servers"]]
    assert created == sorted(created, reverse=True)  # newest first, as Nova sorts
    bad = requests.get(url, params={"marker": "nope"}, headers=headers, timeout=5)
    assert bad.status_code == 400 and "marker" in bad.json()["badRequest"]["message"]


def test_openstacksdk_lists_all_servers_in_page_sized_requests(sim):
    live = [s for s in sim.data.servers.values() if not s.deleted]
    conn = sim.connect()
    sim.reset_counts()
    servers = list(conn.compute.servers(details=True, all_projects=True, limit=10))
    assert {s.id for s in servers} == {s.id for s in live}
    assert sim.requests["nova.servers.detail"] == len(live) // 10 + 1 + (1 if len(live) % 10 else 0)


def test_deleted_servers_appear_only_with_changes_since(sim):
    headers = admin_headers(sim)
    url = sim.url + "/compute/v2.1/servers/detail"
    plain = requests.get(url, params={"all_tenants": "1"}, headers=headers, timeout=5).json()["servers"]
    assert all(s["status"] != "DELETED" for s in plain)
    since = requests.get(url, params={"all_tenants": "1", "changes-since": "2000-01-01T00:00:00Z"},
                         headers=headers, timeout=5).json()["servers"]
    deleted = [s for s in since if s["status"] == "DELETED"]
    assert deleted and len(since) == len(sim.data.servers)
    assert all(s["OS-SRV-USG:terminated_at"] and s["OS-EXT-STS:vm_state"] == "deleted" for s in deleted)
    newest = max(s.updated for s in sim.data.servers.values())
    window = requests.get(url, headers=headers, timeout=5, params={
        "all_tenants": "1", "changes-since": newest.isoformat(), "changes-before": newest.isoformat()}).json()
    assert {s["updated"] for s in window["servers"]} == {newest.strftime("%Y-%m-%dT%H:%M:%SZ")}
    wrong = requests.get(url, headers=headers, timeout=5, params={"changes-since": "2030-01-01T00:00:00Z",
                                                                  "changes-before": "2020-01-01T00:00:00Z"})
    assert wrong.status_code == 400


def test_server_flavor_is_embedded_from_microversion_2_47(sim):
    headers = admin_headers(sim)
    url = sim.url + "/compute/v2.1/servers/detail"
    old = requests.get(url, params={"limit": 1, "all_tenants": 1}, headers=headers, timeout=5).json()["servers"][0]
    assert set(old["flavor"]) == {"id", "links"}
    new = requests.get(url, params={"limit": 1, "all_tenants": 1}, timeout=5,
                       headers=dict(headers, **{"OpenStack-API-Version": "compute 2.47"})).json()["servers"][0]
    assert {"vcpus", "ram", "disk", "ephemeral", "swap", "original_name", "extra_specs"} == set(new["flavor"])
    assert new["OS-SRV-USG:launched_at"] and "OS-EXT-SRV-ATTR:host" in new
    kinds = {a["OS-EXT-IPS:type"] for addresses in new["addresses"].values() for a in addresses}
    assert kinds <= {"fixed", "floating"}


def test_server_list_filters_by_project_only_with_all_tenants(sim):
    headers = admin_headers(sim)
    url = sim.url + "/compute/v2.1/servers"
    pid = project(sim)
    mine = requests.get(url, params={"project_id": pid}, headers=headers, timeout=5).json()["servers"]
    assert mine == []  # without all_tenants the token's own project (admin) is listed
    theirs = requests.get(url, params={"all_tenants": "1", "tenant_id": pid}, headers=headers, timeout=5).json()
    assert len(theirs["servers"]) == sum(1 for s in sim.data.servers.values() if s.project_id == pid and not s.deleted)


def test_non_admins_cannot_list_all_tenants(fresh):
    pid = project(fresh)
    fresh.data.add_user("alice", password="pw", projects=(pid,))
    token = token_for(fresh, {"project": {"id": pid}}, user="alice", password="pw").headers["X-Subject-Token"]
    url = fresh.url + "/compute/v2.1/servers/detail"
    assert requests.get(url, params={"all_tenants": "1"}, headers={"X-Auth-Token": token}, timeout=5).status_code == 403
    own = requests.get(url, headers={"X-Auth-Token": token}, timeout=5).json()["servers"]
    assert own and {s["tenant_id"] for s in own} == {pid} and "OS-EXT-SRV-ATTR:host" not in own[0]


def test_flavors_with_extra_specs_and_private_flavors_for_admins(sim):
    conn = sim.connect()
    names = {f.name for f in conn.compute.flavors(is_public=None)}
    assert "g1.a100" in names
    headers = admin_headers(sim, **{"OpenStack-API-Version": "compute 2.61"})
    public = requests.get(sim.url + "/compute/v2.1/flavors/detail", headers=headers, timeout=5).json()["flavors"]
    assert "g1.a100" not in {f["name"] for f in public}  # admins see private flavours only with is_public=None
    every = requests.get(sim.url + "/compute/v2.1/flavors/detail", params={"is_public": "None"}, headers=headers,
                         timeout=5).json()["flavors"]
    gpu = next(f for f in every if f["name"] == "g1.a100")
    assert gpu["extra_specs"]["Accelerator:Model"] == "A100" and gpu["os-flavor-access:is_public"] is False
    specs = requests.get(f"{sim.url}/compute/v2.1/flavors/{gpu['id']}/os-extra_specs", headers=headers,
                         timeout=5).json()
    assert specs["extra_specs"] == gpu["extra_specs"]


def member_headers(sim: OpenStackSim, name: str = "project-0") -> dict:
    """A token of a user with the member role on one project (no admin role anywhere)."""
    if sim.data.find_user("alice") is None:
        sim.data.add_user("alice", password="pw", projects=(project(sim, name),))
    response = token_for(sim, {"project": {"name": name, "domain": {"name": "Default"}}}, user="alice",
                         password="pw")
    return {"X-Auth-Token": response.headers["X-Subject-Token"]}


def test_flavor_access_lists_are_served_and_changed_as_nova_does(fresh):
    conn = fresh.connect()
    first, second = project(fresh, "project-0"), project(fresh, "project-1")
    gpu = conn.compute.find_flavor("g1.a100", ignore_missing=False)
    assert conn.compute.get_flavor_access(gpu) == []
    conn.compute.flavor_add_tenant_access(gpu, second)
    conn.compute.flavor_add_tenant_access(gpu, first)
    url = f"{fresh.url}/compute/v2.1/flavors/g1-a100-id"
    listed = requests.get(url + "/os-flavor-access", headers=admin_headers(fresh), timeout=5)
    assert listed.status_code == 200
    assert listed.json() == {"flavor_access": [{"flavor_id": "g1-a100-id", "tenant_id": p}
                                               for p in sorted((first, second))]}
    assert fresh.data.flavors["g1-a100-id"].access == {first, second}
    with pytest.raises(openstack.exceptions.ConflictException, match="already exists"):
        conn.compute.flavor_add_tenant_access(gpu, first)
    removed = requests.post(url + "/action", json={"removeTenantAccess": {"tenant": first}},
                            headers=admin_headers(fresh), timeout=5)
    assert removed.json() == {"flavor_access": [{"flavor_id": "g1-a100-id", "tenant_id": second}]}
    with pytest.raises(openstack.exceptions.NotFoundException, match="not found"):
        conn.compute.flavor_remove_tenant_access(gpu, first)
    unknown = requests.post(url + "/action", json={"addTenantAccess": {"tenant": "no-such-project"}},
                            headers=admin_headers(fresh), timeout=5)
    assert unknown.status_code == 400 and "not a valid project" in unknown.text


def test_public_flavors_have_no_access_list(fresh):
    url = f"{fresh.url}/compute/v2.1/flavors/m1-small-id"
    listed = requests.get(url + "/os-flavor-access", headers=admin_headers(fresh), timeout=5)
    assert listed.status_code == 404 and "not available for public flavors" in listed.text
    added = requests.post(url + "/action", json={"addTenantAccess": {"tenant": project(fresh)}},
                          headers=admin_headers(fresh, **{"OpenStack-API-Version": "compute 2.7"}), timeout=5)
    assert added.status_code == 409 and "public flavor" in added.text


def test_only_admins_read_and_change_flavor_access(fresh):
    fresh.data.add_flavor_access("g1-a100-id", project(fresh))
    url = f"{fresh.url}/compute/v2.1/flavors/g1-a100-id"
    member = member_headers(fresh)
    listed = requests.get(url + "/os-flavor-access", headers=member, timeout=5)
    assert listed.status_code == 403 and "os-flavor-access" in listed.text
    added = requests.post(url + "/action", json={"addTenantAccess": {"tenant": project(fresh, "project-1")}},
                          headers=member, timeout=5)
    assert added.status_code == 403 and fresh.data.flavors["g1-a100-id"].access == {project(fresh)}
    visible = requests.get(f"{fresh.url}/compute/v2.1/flavors/detail", headers=member, timeout=5).json()
    assert "g1-a100-id" in {f["id"] for f in visible["flavors"]}  # usable by the member's project


def test_a_site_description_gives_private_flavours_their_projects():
    site = {"projects": [{"id": "a" * 32, "name": "one"}, {"id": "b" * 32, "name": "two"}],
            "flavors": [{"id": "gpu", "vcpus": 8, "ram": 1024, "public": False, "projects": ["b" * 32]},
                        {"id": "open", "vcpus": 1, "ram": 512, "public": False},
                        {"id": "small", "vcpus": 1, "ram": 512, "projects": ["a" * 32]}]}
    data = from_site(site, now=NOW)
    assert data.flavors["gpu"].access == {"b" * 32}
    assert data.flavors["open"].access == set(data.projects)  # not told: every project, as the static backend
    assert data.flavors["small"].access == set()  # public: no access list
    site["flavors"][0]["projects"] = ["c" * 32]
    with pytest.raises(ValueError, match=r"flavors\[0\] \(gpu\): projects names c{32}"):
        from_site(site, now=NOW)


def test_domains_are_read_by_admins_and_by_tokens_of_their_projects(fresh):
    egi = fresh.data.add_domain("EGI")
    member = member_headers(fresh)
    assert requests.get(fresh.auth_url + "/domains", headers=member, timeout=5).status_code == 403
    own = requests.get(fresh.auth_url + "/domains/default", headers=member, timeout=5)
    assert own.status_code == 200 and own.json()["domain"]["name"] == "Default"
    assert requests.get(f"{fresh.auth_url}/domains/{egi.id}", headers=member, timeout=5).status_code == 403
    listed = requests.get(fresh.auth_url + "/domains", headers=admin_headers(fresh), timeout=5).json()["domains"]
    assert {d["name"] for d in listed} == {"Default", "EGI"}
    assert requests.get(f"{fresh.auth_url}/domains/{egi.id}", headers=admin_headers(fresh), timeout=5).json()[
        "domain"]["name"] == "EGI"


def test_a_site_description_names_project_domains():
    site = {"projects": [{"id": "a" * 32, "name": "one", "domain": "Default"},
                         {"id": "b" * 32, "name": "two", "domain": "default"},
                         {"id": "c" * 32, "name": "three", "domain": "EGI"}]}
    data = from_site(site, now=NOW)
    assert data.projects["a" * 32].domain_id == data.projects["b" * 32].domain_id == "default"
    assert data.domains[data.projects["c" * 32].domain_id].name == "EGI"


def test_simple_tenant_usage_counts_hours_and_pages_from_2_40(fresh):
    pid = project(fresh)
    fresh.data.set_now(NOW)
    flavor = next(iter(fresh.data.flavors))
    server = fresh.data.boot_server(pid, fresh.data.find_user("admin").id, flavor, created=NOW - timedelta(hours=10))
    fresh.data.advance(hours=2)
    fresh.data.delete_server(server.id)
    headers = admin_headers(fresh)
    url = f"{fresh.url}/compute/v2.1/os-simple-tenant-usage/{pid}"
    period = {"start": (NOW - timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%S"),
              "end": (NOW + timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%S.%f")}
    usage = requests.get(url, params=period, headers=headers, timeout=5).json()["tenant_usage"]
    mine = next(u for u in usage["server_usages"] if u["instance_id"] == server.id)
    assert mine["hours"] == pytest.approx(7.0) and mine["state"] == "terminated" and mine["ended_at"]
    assert requests.get(url, params=dict(period, limit=1), headers=headers, timeout=5).status_code == 400
    paged = requests.get(url, params=dict(period, limit=1), timeout=5,
                         headers=dict(headers, **{"OpenStack-API-Version": "compute 2.40"})).json()
    assert len(paged["tenant_usage"]["server_usages"]) == 1 and paged["tenant_usage_links"][0]["rel"] == "next"
    conn = fresh.connect()
    assert len(conn.compute.get_usage(pid, start=NOW - timedelta(hours=5), end=NOW).server_usages) >= 1


def test_hypervisor_statistics_exist_until_microversion_2_87(sim):
    url = sim.url + "/compute/v2.1/os-hypervisors/detail"
    old = requests.get(url, headers=admin_headers(sim, **{"OpenStack-API-Version": "compute 2.87"}), timeout=5)
    assert all("vcpus" in h for h in old.json()["hypervisors"])
    new = requests.get(url, headers=admin_headers(sim, **{"OpenStack-API-Version": "compute 2.88"}), timeout=5)
    assert all("vcpus" not in h for h in new.json()["hypervisors"])
    stats = requests.get(sim.url + "/compute/v2.1/os-hypervisors/statistics", timeout=5,
                         headers=admin_headers(sim, **{"OpenStack-API-Version": "compute 2.88"}))
    assert stats.status_code == 404


def test_quotas_and_limits(sim):
    pid = project(sim)
    detail = requests.get(f"{sim.url}/compute/v2.1/os-quota-sets/{pid}/detail", headers=admin_headers(sim),
                          timeout=5).json()["quota_set"]
    used = sum(1 for s in sim.data.servers.values() if s.project_id == pid and not s.deleted)
    assert detail["instances"]["in_use"] == used and detail["instances"]["limit"] == sim.data.quotas[pid]["instances"]
    limits = sim.connect().compute.get_limits()
    assert limits.absolute.instances == 10  # the admin project has the default quota


def test_server_life_cycle_through_the_api_and_the_clock(fresh):
    conn = fresh.connect()
    flavor = next(f for f in conn.compute.flavors() if f.name == "m1.small")
    server = conn.compute.create_server(name="made", flavor_id=flavor.id, image_id=next(iter(fresh.data.images)),
                                        networks=[])
    fresh.data.advance(hours=1)
    conn.compute.suspend_server(server)
    assert conn.compute.get_server(server.id).status == "SUSPENDED"
    fresh.data.advance(hours=1)
    conn.compute.delete_server(server)
    with pytest.raises(openstack.exceptions.NotFoundException):
        conn.compute.get_server(server.id)
    gone = fresh.data.servers[server.id]
    assert gone.terminated_at == NOW + timedelta(hours=2) and gone.status == "DELETED"


# -- Glance ---------------------------------------------------------------------------------------------
def test_glance_lists_images_in_pages_with_a_next_link(sim):
    headers = admin_headers(sim)
    first = requests.get(sim.url + "/image/v2/images", params={"limit": 2}, headers=headers, timeout=5).json()
    assert len(first["images"]) == 2 and first["next"].startswith("/v2/images?")
    second = requests.get(sim.url + "/image" + first["next"], headers=headers, timeout=5).json()
    assert first["images"][-1]["id"] != second["images"][0]["id"]
    assert first["images"][0]["vmcatcher_event_ad_mpuri"].startswith("https://appdb")  # custom property top-level
    assert len(list(sim.connect().image.images())) == len(sim.data.images)


def test_glance_filters_by_owner_visibility_tag_and_property(fresh):
    pid = project(fresh)
    fresh.data.add_image("mine", pid, visibility="private", tags=["egi"], properties={"appdb_id": "42"})
    headers = admin_headers(fresh)
    url = fresh.url + "/image/v2/images"

    def names(**params):
        return {i["name"] for i in requests.get(url, params=params, headers=headers, timeout=5).json()["images"]}

    assert names(owner=pid) == {"mine"}
    assert names(visibility="private") == {"mine"}
    assert names(tag="egi") == {"mine"}
    assert names(appdb_id="42") == {"mine"}
    assert "mine" not in names(visibility="public")


def test_image_upload_streams_and_records_size_and_hashes(fresh):
    conn = fresh.connect()
    payload = b"0123456789" * 100_000
    image = conn.image.create_image(name="up", disk_format="qcow2", container_format="bare",
                                    data=io.BytesIO(payload), validate_checksum=False)
    stored = conn.image.get_image(image.id)
    assert stored.status == "active" and stored.size == len(payload)
    assert stored.checksum == hashlib.md5(payload).hexdigest()
    assert stored.hash_algo == "sha512" and stored.hash_value == hashlib.sha512(payload).hexdigest()
    assert conn.image.download_image(stored).content == payload


def test_chunked_uploads_are_accepted(fresh):
    headers = admin_headers(fresh)
    created = requests.post(fresh.url + "/image/v2/images", headers=headers, timeout=5,
                            json={"name": "chunks", "disk_format": "raw", "container_format": "bare"}).json()
    assert created["status"] == "queued"
    upload = requests.put(f"{fresh.url}/image/v2/images/{created['id']}/file", timeout=5,
                          headers=dict(headers, **{"Content-Type": "application/octet-stream"}),
                          data=(bytes([i]) * 1000 for i in range(10)))
    assert upload.status_code == 204
    assert fresh.data.images[created["id"]].size == 10_000


def test_image_json_patch_rules(fresh):
    headers = admin_headers(fresh)
    image = fresh.data.add_image("p", project(fresh, "admin"), properties={"keep": "1"})
    url = f"{fresh.url}/image/v2/images/{image.id}"
    patch = dict(headers, **{"Content-Type": "application/openstack-images-v2.1-json-patch"})
    ok = requests.patch(url, headers=patch, timeout=5, json=[
        {"op": "add", "path": "/new", "value": "v"}, {"op": "replace", "path": "/name", "value": "q"},
        {"op": "remove", "path": "/keep"}])
    assert ok.status_code == 200 and ok.json()["new"] == "v" and ok.json()["name"] == "q" and "keep" not in ok.json()
    assert requests.patch(url, headers=dict(headers, **{"Content-Type": "application/json"}), json=[],
                          timeout=5).status_code == 415
    assert requests.patch(url, headers=patch, json=[{"op": "replace", "path": "/size", "value": 1}],
                          timeout=5).status_code == 403
    assert requests.patch(url, headers=patch, json=[{"op": "remove", "path": "/absent"}], timeout=5).status_code == 409
    assert requests.patch(url, headers=patch, json=[{"op": "add", "path": "/n", "value": 5}],
                          timeout=5).status_code == 400


def test_protected_images_cannot_be_deleted_and_deactivation_hides_data(fresh):
    conn = fresh.connect()
    image = conn.image.create_image(name="prot", disk_format="raw", container_format="bare",
                                    data=io.BytesIO(b"abc"), validate_checksum=False)
    conn.image.update_image(image, is_protected=True)
    with pytest.raises(openstack.exceptions.HttpException) as refused:
        conn.image.delete_image(image)
    assert refused.value.status_code == 403
    conn.image.deactivate_image(image)
    assert conn.image.get_image(image).status == "deactivated"
    conn.image.reactivate_image(image)
    conn.image.update_image(image, is_protected=False)
    conn.image.delete_image(image)
    assert image.id not in fresh.data.images


def test_image_members_and_tags(fresh):
    conn = fresh.connect()
    pid = project(fresh)
    image = conn.image.create_image(name="shared", disk_format="raw", container_format="bare",
                                    visibility="shared", data=io.BytesIO(b"abc"), validate_checksum=False)
    conn.image.add_member(image, member_id=pid)
    conn.image.update_member(pid, image, status="accepted")
    assert [(m.member_id, m.status) for m in conn.image.members(image)] == [(pid, "accepted")]
    conn.image.remove_member(pid, image)
    assert list(conn.image.members(image)) == []
    conn.image.add_tag(image, "egi")
    assert conn.image.get_image(image).tags == ["egi"]
    private = fresh.data.add_image("priv", pid, visibility="private")
    refused = requests.post(f"{fresh.url}/image/v2/images/{private.id}/members", json={"member": pid},
                            headers=admin_headers(fresh), timeout=5)
    assert refused.status_code == 403


# -- Neutron and Cinder ------------------------------------------------------------------------------------
def test_floating_ips_filter_by_project_and_page(sim):
    pid = project(sim)
    conn = sim.connect()
    ips = list(conn.network.ips(project_id=pid))
    assert ips and {ip.project_id for ip in ips} == {pid}
    headers = admin_headers(sim)
    page = requests.get(sim.url + "/network/v2.0/floatingips", params={"limit": 1}, headers=headers, timeout=5).json()
    assert len(page["floatingips"]) == 1 and page["floatingips_links"][0]["rel"] == "next"
    by_tenant = requests.get(sim.url + "/network/v2.0/floatingips", params={"tenant_id": pid}, headers=headers,
                             timeout=5).json()["floatingips"]
    assert {f["id"] for f in by_tenant} == {ip.id for ip in ips}


def test_cinder_lists_volumes_of_all_tenants_with_paging_and_changes_since(fresh):
    pid = project(fresh)
    volume = fresh.data.add_volume("gone", pid, "u", 5, created=NOW - timedelta(days=3))
    fresh.data.set_now(NOW)
    fresh.data.delete_volume(volume.id)
    conn = fresh.connect()
    live = list(conn.block_storage.volumes(all_projects=True))
    assert volume.id not in {v.id for v in live} and len(live) == 4
    headers = admin_headers(fresh)
    url = f"{fresh.url}/volume/v3/{project(fresh, 'admin')}/volumes/detail"
    since = requests.get(url, params={"all_tenants": 1, "changes-since": "2026-11-19T00:00:00"}, headers=headers,
                         timeout=5).json()["volumes"]
    assert [v["id"] for v in since] == [volume.id] and since[0]["status"] == "deleted"
    page = requests.get(url, params={"all_tenants": 1, "limit": 2}, headers=headers, timeout=5).json()
    assert len(page["volumes"]) == 2 and page["volumes_links"][0]["rel"] == "next"


# -- faults and counters -------------------------------------------------------------------------------------
def test_injected_server_errors_reach_the_client(fresh):
    fresh.inject("status", route="nova.flavors.detail", status=500)
    conn = fresh.connect()
    with pytest.raises(openstack.exceptions.HttpException) as failed:
        list(conn.compute.flavors())
    assert failed.value.status_code == 500
    assert len(list(conn.compute.flavors())) > 0


def test_a_cut_body_breaks_the_client_read(fresh):
    headers = admin_headers(fresh)
    fresh.inject("truncate", route="nova.flavors.detail")
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(fresh.url + "/compute/v2.1/flavors/detail", headers=headers, timeout=5).json()


def test_short_pages_end_without_a_next_link_but_marker_paging_recovers(fresh):
    headers = admin_headers(fresh)
    url = fresh.url + "/compute/v2.1/servers/detail"
    fresh.short_pages("nova.servers.detail")
    short = requests.get(url, params={"all_tenants": 1, "limit": 10}, headers=headers, timeout=5).json()
    assert len(short["servers"]) == 5 and "servers_links" not in short
    rest = requests.get(url, params={"all_tenants": 1, "limit": 10, "marker": short["servers"][-1]["id"]},
                        headers=headers, timeout=5).json()
    assert rest["servers"]


def test_slow_responses_delay_the_answer(fresh):
    import time

    fresh.inject("delay", route="keystone.version", delay=0.3)
    started = time.monotonic()
    assert requests.get(fresh.url + "/v3", timeout=5).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_requests_are_counted_per_endpoint(fresh):
    fresh.reset_counts()
    headers = admin_headers(fresh)
    requests.get(fresh.url + "/compute/v2.1/servers", headers=headers, timeout=5)
    assert fresh.requests == {"keystone.auth.tokens.issue": 1, "nova.servers": 1}


# -- data sets -------------------------------------------------------------------------------------------------
def test_generated_data_is_deterministic_for_a_seed():
    one = generate(seed=11, n_projects=2, vms_per_project=30, now=NOW)
    two = generate(seed=11, n_projects=2, vms_per_project=30, now=NOW)
    other = generate(seed=12, n_projects=2, vms_per_project=30, now=NOW)
    assert [(s.id, s.status, s.updated) for s in one.servers.values()] == \
        [(s.id, s.status, s.updated) for s in two.servers.values()]
    assert set(one.servers) != set(other.servers)
    assert any(s.deleted for s in one.servers.values()) and len(one.servers) == 60


def test_the_static_demo_site_is_served_with_its_ids():
    data = from_site(DEMO_SITE, now=NOW)
    with OpenStackSim(data) as server:
        conn = server.connect()
        servers = {s.id: s for s in conn.compute.servers(details=True, all_projects=True,
                                                          changes_since="2000-01-01T00:00:00Z")}
        assert servers["2a4c6e8a-0b2d-4f6b-8d0f-2b4d6f8b0d2f"].status == "DELETED"
        assert servers["8e0a2c4e-6b8d-4a0c-9e2b-4d6f8a0c2e4a"].status == "SUSPENDED"
        worker = servers["6d2b8f4e-1a3c-4e5f-8b7d-9c1e3a5f7b9d"]
        assert {a["OS-EXT-IPS:type"] for a in worker.addresses["private"]} == {"fixed", "floating"}
        projects = {p.id: p for p in conn.identity.projects()}
        assert "3a1f0c2e9d7b4e7f8a6b5c4d3e2f1a0b" in projects
        assert {f.name for f in conn.compute.flavors(is_public=None)} == {"m1.small", "m1.large", "g1.a100"}


def test_the_clock_moves_servers_across_a_month_boundary(fresh):
    pid = project(fresh)
    fresh.data.set_now(datetime(2026, 11, 30, 23, 0, tzinfo=timezone.utc))
    server = fresh.data.boot_server(pid, "u", next(iter(fresh.data.flavors)),
                                    addresses=[SimAddress("private", "10.9.9.9")])
    fresh.data.advance(hours=2)
    fresh.data.set_server_status(server.id, "SHUTOFF")
    assert server.updated == datetime(2026, 12, 1, 1, 0, tzinfo=timezone.utc)
    assert server.launched_at == datetime(2026, 11, 30, 23, 0, tzinfo=timezone.utc)


def test_the_simulator_refuses_non_loopback_addresses():
    with pytest.raises(ValueError):
        OpenStackSim(host="0.0.0.0")


# -- clients other than openstacksdk ------------------------------------------------------------------------------
def test_a_caso_style_run_with_plain_requests(fresh):
    """The calls python-novaclient/keystoneclient/glanceclient/neutronclient/cinderclient make for cASO."""
    http = requests.Session()
    http.headers.update({"User-Agent": "python-novaclient", "Accept": "application/json"})
    system = token_for(fresh, {"system": {"all": True}})
    catalog = {e["type"]: e["endpoints"][0]["url"] for e in system.json()["token"]["catalog"]}
    keystone = {"X-Auth-Token": system.headers["X-Subject-Token"]}
    tagged = http.get(catalog["identity"] + "/projects", params={"tags": "fedcloud"}, headers=keystone,
                      timeout=5).json()["projects"]
    assert [p["name"] for p in tagged] == ["project-0"]
    pid = tagged[0]["id"]
    fresh.data.grant(fresh.data.find_user("admin").id, "reader", project_id=pid)
    scoped = token_for(fresh, {"project": {"id": pid}})
    catalog = {e["type"]: e["endpoints"][0]["url"] for e in scoped.json()["token"]["catalog"]}
    nova = {"X-Auth-Token": scoped.headers["X-Subject-Token"], "X-OpenStack-Nova-API-Version": "2.1"}
    servers, marker = [], None
    while True:
        params = {"changes-since": "2026-10-01T00:00:00", "limit": 5}
        if marker:
            params["marker"] = marker
        page = http.get(catalog["compute"] + "/servers/detail", params=params, headers=nova, timeout=5).json()
        if not page["servers"]:
            break
        servers += page["servers"]
        marker = page["servers"][-1]["id"]
    changed = {s.id for s in fresh.data.servers.values()
               if s.project_id == pid and s.updated >= datetime(2026, 10, 1, tzinfo=timezone.utc)}
    assert {s["id"] for s in servers} == changed
    usage = http.get(f"{catalog['compute']}/os-simple-tenant-usage/{pid}", headers=nova, timeout=5,
                     params={"start": "2026-10-01T00:00:00", "end": "2026-11-20T00:00:00"}).json()["tenant_usage"]
    assert usage["server_usages"] and usage["tenant_id"] == pid
    flavors = http.get(catalog["compute"] + "/flavors/detail", headers=nova, timeout=5).json()["flavors"]
    specs = http.get(f"{catalog['compute']}/flavors/{flavors[0]['id']}/os-extra_specs", headers=nova, timeout=5)
    assert "extra_specs" in specs.json() and "extra_specs" not in flavors[0]  # not embedded before 2.61
    user = http.get(f"{catalog['identity']}/users/{servers[0]['user_id']}", headers=keystone, timeout=5).json()
    assert user["user"]["name"].startswith("user-0-")
    images = http.get(catalog["image"] + "/v2/images", params={"limit": 200}, headers=nova, timeout=5).json()
    assert len(images["images"]) == len(fresh.data.images)
    fips = http.get(catalog["network"] + "/v2.0/floatingips", params={"project_id": pid}, headers=nova,
                    timeout=5).json()["floatingips"]
    assert {f["project_id"] for f in fips} == {pid}
    volumes = http.get(catalog["volumev3"] + "/volumes/detail", headers=nova, timeout=5,
                       params={"changes-since": "2026-10-01T00:00:00", "limit": 200}).json()["volumes"]
    assert volumes and all("os-vol-tenant-attr:tenant_id" not in v for v in volumes)  # not an admin token


def test_instance_actions_are_listed_newest_first_and_paged_as_nova_does(fresh):
    data = fresh.data
    server = next(s for s in data.servers.values() if not s.deleted and s.status == "ACTIVE")
    for hour, status in enumerate(["SUSPENDED", "ACTIVE", "SHUTOFF", "ACTIVE", "PAUSED"], start=1):
        data.set_now(NOW + timedelta(hours=hour))
        data.set_server_status(server.id, status)
    conn = fresh.connect(compute_api_version="2.58")
    listed = list(conn.compute.server_actions(server.id, limit=2))  # openstacksdk follows the next links
    assert [a.action for a in listed[:5]] == ["pause", "start", "stop", "resume", "suspend"]
    assert [a.request_id for a in listed] == [a.request_id for a in reversed(server.actions)]
    assert fresh.requests["nova.server.instance_actions"] >= 3
    since = list(conn.compute.server_actions(server.id, changes_since=(NOW + timedelta(hours=4)).isoformat()))
    assert [a.action for a in since] == ["pause", "start"]


def test_instance_actions_of_deleted_servers_need_microversion_2_21(fresh):
    server = next(s for s in fresh.data.servers.values() if not s.deleted)
    fresh.data.delete_server(server.id)
    headers = admin_headers(fresh)
    url = f"{fresh.url}/compute/v2.1/servers/{server.id}/os-instance-actions"
    assert requests.get(url, headers=dict(headers, **{"OpenStack-API-Version": "compute 2.20"}),
                        timeout=5).status_code == 404
    body = requests.get(url, headers=dict(headers, **{"OpenStack-API-Version": "compute 2.21"}), timeout=5).json()
    assert body["instanceActions"][0]["action"] == "delete"
    assert "updated_at" not in body["instanceActions"][0]  # from 2.58
