"""Perun sync onto OpenNebula: the XML-RPC simulator driven through pyone by the opennebula backend."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pyone
import pytest
from perun_helpers import ALPHA, BETA, T0, member

from fedcloud_site.errors import FedcloudSiteError
from fedcloud_testing.opennebula import (
    OneFault,
    OpenNebulaSimulator,
    SimCloud,
    SimGroup,
    SimUser,
    SimVM,
    ensure_admin,
)

MARK = "FEDCLOUD_SITE_MANAGED"


@pytest.fixture
def one():
    cloud = SimCloud()
    ensure_admin(cloud)
    cloud.groups[100] = SimGroup(100, ALPHA)
    cloud.groups[101] = SimGroup(101, BETA)
    cloud.users[5] = SimUser(5, "serveradmin", "secret", 0, [0])
    cloud.users[6] = SimUser(6, "localuser", "secret", 100, [100], template={"EMAIL": "local@site.example"})
    with OpenNebulaSimulator(cloud) as sim:
        yield sim


@pytest.fixture
def one_site(site, one):
    admin = next(u for u in one.cloud.users.values() if 0 in u.groups and u.id == 0)
    site.cloud = {"backend": "opennebula",
                  "opennebula": {"endpoint": one.url, "username": admin.name, "password": admin.password}}
    site.configure()
    return site


def _by_name(sim):
    return {u.name: u for u in sim.cloud.users.values()}


def test_members_become_opennebula_users_with_x509_login_template_groups_and_quota(one_site, one):
    one_site.push([member("jane@egi.eu", dns=["/DC=org/DC=example/CN=Jane Doe"], keys=["ssh-ed25519 AAAAj jane"],
                          name="Jane Doe", more=[{"vo": BETA, "status": "VALID"}]),
                   member("bob@egi.eu", vo=BETA, dns=[])])
    assert one_site.run("once") == 0
    users = _by_name(one)
    jane = users["jane@egi.eu"]
    # oned's x509 driver stores DNs with blanks escaped (X509Auth.escape_dn)
    assert jane.auth_driver == "x509" and jane.password == "/DC=org/DC=example/CN=Jane\\20Doe"
    assert jane.gid == 100 and set(jane.groups) == {100, 101}
    assert jane.template["EMAIL"] == "jane@example.org" and jane.template["SSH_PUBLIC_KEY"] == "ssh-ed25519 AAAAj jane"
    assert jane.template[MARK] == "yes" and jane.template["PERUN_ID"] == "jane@egi.eu"
    assert jane.quota.get("VMS") == "4" and jane.quota.get("CPU") == "8"
    assert users["bob@egi.eu"].auth_driver == "core"  # no DN: no certificate login
    assert one_site.run("once") == 0  # idempotent: nothing to do the second time
    assert [a["action"] for a in one_site.audit()] == ["create", "create"]


def test_dn_change_changes_the_x509_login_and_leaving_disables(one_site, one):
    one_site.push([member("jane@egi.eu", dns=["/DC=org/DC=old/CN=Jane"]), member("bob@egi.eu")])
    one_site.run("once")
    one_site.push([member("jane@egi.eu", dns=["/DC=org/DC=new/CN=Jane"]), member("bob@egi.eu")])
    assert one_site.run("once") == 0
    jane = _by_name(one)["jane@egi.eu"]
    assert jane.password == "/DC=org/DC=new/CN=Jane" and jane.template["X509_DN"] == "/DC=org/DC=new/CN=Jane"
    one_site.push([member("bob@egi.eu")])
    assert one_site.run("once") == 0
    jane = _by_name(one)["jane@egi.eu"]
    assert not jane.enabled and jane.gid == 100
    one_site.push([member("jane@egi.eu", dns=["/DC=org/DC=new/CN=Jane"]), member("bob@egi.eu")])
    assert one_site.run("once") == 0
    assert _by_name(one)["jane@egi.eu"].enabled


def test_user_owning_a_running_vm_is_not_deleted_after_grace(one_site, one):
    one_site.push([member("jane@egi.eu"), member("bob@egi.eu")])
    one_site.run("once")
    jane = _by_name(one)["jane@egi.eu"]
    one.cloud.add_vm(SimVM(id=1, uid=jane.id, gid=100, name="work", state=int(pyone.VM_STATE.ACTIVE),
                           lcm_state=int(pyone.LCM_STATE.RUNNING), stime=int(T0.timestamp()), uname=jane.name,
                           gname=ALPHA))
    one_site.push([member("bob@egi.eu")])
    one_site.run("once")
    state = one_site.state()
    state["disabled"]["jane@egi.eu"]["since"] = (T0 - timedelta(days=60)).isoformat()
    one_site.save_state(state)
    assert one_site.run("once") == 0
    assert "jane@egi.eu" in _by_name(one)
    one.cloud.terminate(1)  # the VM ends: DONE
    assert one_site.run("once") == 0
    assert "jane@egi.eu" not in _by_name(one)


def test_opennebula_users_we_do_not_manage_are_untouched(one_site, one):
    before = {n: (u.enabled, dict(u.template), list(u.groups)) for n, u in _by_name(one).items()}
    one_site.push([member("localuser"), member("serveradmin"), member("oneadmin"), member("jane@egi.eu")])
    assert one_site.run("once") == 0
    after = _by_name(one)
    for name, (enabled, template, groups) in before.items():
        assert (after[name].enabled, after[name].template, list(after[name].groups)) == (enabled, template, groups)


def test_failure_half_way_through_a_create_is_completed_by_the_next_run(one_site, one):
    one_site.push([member("jane@egi.eu"), member("bob@egi.eu")])
    one.inject(OneFault("error", method="one.user.update", count=1, message="[one.user.update] injected"))
    assert one_site.run("once") == FedcloudSiteError.exit_status
    assert "injected" in one_site.output()
    half = _by_name(one)["jane@egi.eu"]
    assert MARK not in half.template  # allocated, never marked
    assert one_site.run("once") == 0
    users = _by_name(one)
    assert users["jane@egi.eu"].id == half.id and users["jane@egi.eu"].template[MARK] == "yes"
    assert Counter(u.name for u in one.cloud.users.values())["jane@egi.eu"] == 1


def test_opennebula_down_stops_the_apply_and_the_next_run_finishes_it(one_site, one):
    one_site.push([member(f"u{i}@egi.eu") for i in range(6)])
    one.inject(OneFault("http", method="one.user.allocate", count=100, status=503))
    assert one_site.run("once") == FedcloudSiteError.exit_status
    assert (one_site.state_dir / "journal.json").exists()
    one.clear_faults()
    assert one_site.run("once") == 0
    assert sum(1 for n in _by_name(one) if n.startswith("u") and n.endswith("@egi.eu")) == 6


def test_process_killed_mid_apply_against_opennebula_resumes_without_duplicates(one_site, one):
    names = [f"user{i:03d}@egi.eu" for i in range(40)]
    one_site.push([member(n) for n in names])
    one.inject(OneFault("delay", method="one.user.update", count=1000, delay=0.02))
    one_site.kill_during_apply(done=8)
    one.clear_faults()
    assert one_site.run("once") == 0
    counts = Counter(u.name for u in one.cloud.users.values())
    assert all(counts[n] == 1 for n in names)
    assert all(u.template.get(MARK) == "yes" and u.enabled for u in one.cloud.users.values() if u.name in names)
    assert not (one_site.state_dir / "journal.json").exists()
