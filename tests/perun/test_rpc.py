"""Pulling membership from the Perun RPC simulator over HTTPS (client certificate or password)."""

from __future__ import annotations

import pytest
import requests
from perun_helpers import ALPHA, BETA

from fedcloud_site.demo.http import Fault
from fedcloud_site.errors import FedcloudSiteError, JobRefused
from fedcloud_testing.perun_sim import LOGIN_EGI, PREFERRED_MAIL


@pytest.fixture
def perun(perun_sim):
    """Two VOs; beta is mirrored only through its 'cloud' group."""
    sim = perun_sim
    sim.alpha = sim.add_vo(ALPHA, vo_id=11)
    sim.beta = sim.add_vo(BETA, vo_id=12)
    sim.cloud_group = sim.add_group(sim.beta, f"{BETA}:cloud", group_id=120)
    jane = sim.add_user("jane@egi.eu", "Jane", "Doe", "jane@example.org",
                        dns={"/DC=org/DC=example/CN=CA": "/DC=org/DC=example/CN=Jane Doe"},
                        ssh_keys=["ssh-ed25519 AAAAjane jane"])
    bob = sim.add_user("bob@egi.eu", "Bob", "Smith", "bob@example.org")
    carl = sim.add_user("carl@egi.eu", "Carl", "Jones")
    sim.jane_alpha = sim.add_member(sim.alpha, jane)
    sim.jane_beta = sim.add_member(sim.beta, jane, groups=[sim.cloud_group])
    sim.bob_alpha = sim.add_member(sim.alpha, bob, status="SUSPENDED")
    sim.add_member(sim.beta, carl)  # in the VO but not in its cloud group
    return sim


def _rpc_site(site, pki, sim, **rpc):
    settings = {"url": sim.url, "cert_file": str(pki.client.cert), "key_file": str(pki.client.key),
                "ca_file": str(pki.ca_file), "retries": 0, "timeout": 5}
    settings.update(rpc)
    site.configure(source="rpc", rpc=settings,
                   vos={ALPHA: {"vo_id": 11}, BETA: {"vo_id": 12, "group_ids": [120]}})


def test_pull_with_client_certificate_mirrors_valid_members_of_vos_and_groups(site, pki, perun):
    _rpc_site(site, pki, perun)
    assert site.run("once") == 0
    users = site.users()
    jane = users["jane@egi.eu"]
    assert set(jane.groups) == {"100", "101"} and jane.enabled
    assert jane.display_name == "Jane Doe" and jane.email == "jane@example.org"
    assert jane.x509_dns == ("/DC=org/DC=example/CN=Jane Doe",) and jane.ssh_keys == ("ssh-ed25519 AAAAjane jane",)
    assert "bob@egi.eu" not in users  # suspended: no account
    assert "carl@egi.eu" not in users  # not in the configured group
    calls = perun.server.requests
    assert calls["membersManager/getCompleteRichMembers"] == 2 and calls["vosManager/getVoById"] == 2
    assert site.state()["last_applied"]["format"] == "rpc"


def test_pull_with_password_login(site, pki, perun):
    _rpc_site(site, pki, perun, cert_file=None, key_file=None, username=perun.username, password=perun.password)
    assert site.run("once") == 0
    assert "jane@egi.eu" in site.users()


def test_member_suspended_in_perun_is_disabled(site, pki, perun):
    _rpc_site(site, pki, perun)
    perun.add_member(perun.alpha, perun.add_user("dora@egi.eu", "Dora", "Lee"))
    site.run("once")
    perun.set_status(perun.jane_alpha, "SUSPENDED")
    perun.server.reset_counts()
    assert site.run("once") == 0
    jane = site.users()["jane@egi.eu"]
    assert jane.enabled and jane.groups == ("101",)  # still VALID in beta's cloud group
    perun.set_status(perun.jane_beta, "EXPIRED")
    assert site.run("sync", "--force") == 0  # beta drops to 0 valid members: forced
    assert not site.users()["jane@egi.eu"].enabled


def test_attribute_changes_in_perun_reach_the_cloud(site, pki, perun):
    _rpc_site(site, pki, perun)
    site.run("once")
    jane = next(uid for uid, u in perun.users.items() if u.attributes.get(LOGIN_EGI) == "jane@egi.eu")
    perun.set_attribute(jane, PREFERRED_MAIL, "jane@new.example.org")
    assert site.run("once") == 0
    assert site.users()["jane@egi.eu"].email == "jane@new.example.org"


def test_wrong_password_is_reported_and_changes_nothing(site, pki, perun):
    _rpc_site(site, pki, perun, cert_file=None, key_file=None, username="perun-site", password="wrong")
    assert site.run("once") == FedcloudSiteError.exit_status
    assert "HTTP 401: credentials rejected" in site.output()
    assert "jane@egi.eu" not in site.users()


def test_client_certificate_from_an_untrusted_ca_is_rejected_in_the_tls_handshake(site, pki, perun):
    _rpc_site(site, pki, perun, cert_file=str(pki.untrusted.cert), key_file=str(pki.untrusted.key))
    assert site.run("once") == FedcloudSiteError.exit_status
    assert "TLS failure" in site.output() or "unreachable" in site.output()


def test_perun_answering_503_is_retried_then_reported_and_nothing_changes(site, pki, perun):
    _rpc_site(site, pki, perun, retries=1)
    perun.server.inject(Fault("status", route="membersManager/getCompleteRichMembers", count=5, status=503))
    assert site.run("once") == FedcloudSiteError.exit_status
    assert "HTTP 503" in site.output()
    assert perun.server.requests["membersManager/getCompleteRichMembers"] == 2  # first try + one retry
    assert "jane@egi.eu" not in site.users()
    assert site.state()["last_run"]["result"] == "failed"


def test_one_transient_503_is_retried_transparently(site, pki, perun):
    _rpc_site(site, pki, perun, retries=2)
    perun.server.inject(Fault("status", route="vosManager/getVoById", count=1, status=502))
    assert site.run("once") == 0
    assert "jane@egi.eu" in site.users()


def test_perun_timing_out_is_reported_as_unreachable(site, pki, perun):
    _rpc_site(site, pki, perun, timeout=0.5)
    perun.server.inject(Fault("delay", route="membersManager/getCompleteRichMembers", count=1, delay=2.0))
    assert site.run("once") == FedcloudSiteError.exit_status
    out = site.output()
    assert "unreachable" in out and "timed out" in out
    assert "jane@egi.eu" not in site.users()


def test_perun_down_is_reported_as_unreachable(site, pki, perun):
    _rpc_site(site, pki, perun)
    perun.stop()
    assert site.run("once") == FedcloudSiteError.exit_status
    assert "unreachable" in site.output()


def test_perun_error_names_the_exception_and_the_call(site, pki, perun):
    _rpc_site(site, pki, perun)
    site.configure(vos={ALPHA: {"vo_id": 99}})
    assert site.run("once") == FedcloudSiteError.exit_status
    out = site.output()
    assert "vosManager/getVoById {'id': 99}: HTTP 400: VoNotExistsException: Vo with id 99 does not exist" in out


def test_vo_id_of_another_vo_is_refused(site, pki, perun):
    _rpc_site(site, pki, perun)
    site.configure(vos={ALPHA: {"vo_id": 12}})
    assert site.run("once") == FedcloudSiteError.exit_status
    assert "perun.vos.vo.alpha.eu.vo_id 12 is Perun VO 'vo.beta.eu', not 'vo.alpha.eu'" in site.output()


def test_member_without_login_refuses_the_whole_pull_naming_the_member(site, pki, perun):
    _rpc_site(site, pki, perun)
    nobody = perun.add_user(None, "No", "Login")
    member_id = perun.add_member(perun.alpha, nobody)
    assert site.run("once") == JobRefused.exit_status
    assert f"member {member_id} (user {nobody}): no {LOGIN_EGI}" in site.output()
    assert "jane@egi.eu" not in site.users()


def test_rpc_without_vo_ids_is_a_configuration_error(site, pki, perun):
    _rpc_site(site, pki, perun)
    site.configure(vos={ALPHA: {}})
    assert site.run("once") == 2
    assert "perun: vos.vo.alpha.eu.vo_id: required when source is rpc" in site.output()


def test_simulator_speaks_perun_url_scheme_with_get_parameters_and_error_json(pki, perun):
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override session.verify
    session.verify = str(pki.ca_file)
    session.auth = (perun.username, perun.password)
    got = session.get(f"{perun.url}/ba/rpc/json/membersManager/getCompleteRichMembers",
                      params={"vo": 11, "attrsNames[]": [LOGIN_EGI], "allowedStatuses[]": ["VALID"]}, timeout=5)
    assert got.status_code == 200
    (rich,) = got.json()
    assert rich["beanName"] == "RichMember" and rich["status"] == "VALID"
    assert rich["userAttributes"][0]["namespace"] == "urn:perun:user:attribute-def:virt"
    assert rich["userAttributes"][0]["friendlyName"] == "optional-login-namespace:egi"
    bad = session.post(f"{perun.url}/ba/rpc/json/vosManager/getVoById", json={"id": 5}, timeout=5)
    assert bad.status_code == 400
    assert bad.json()["name"] == "VoNotExistsException" and bad.json()["errorId"]
    unknown = session.post(f"{perun.url}/ba/rpc/json/vosManager/explode", json={}, timeout=5)
    assert unknown.status_code == 400 and unknown.json()["name"] == "RpcException"
    assert session.post(f"{perun.url}/cert/rpc/json/vosManager/getVos", json={}, timeout=5).status_code == 401
