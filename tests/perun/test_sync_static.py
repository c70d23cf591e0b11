"""Perun sync from the pushed JSON file onto the static backend, through ``fedcloud-site perun ...``."""

from __future__ import annotations

from datetime import timedelta

from perun_helpers import ALPHA, BETA, GAMMA, T0, member

MARK = "FEDCLOUD_SITE_MANAGED"


def test_valid_members_become_enabled_managed_users_in_their_vo_group_with_dns_keys_and_quota(site):
    site.push([member("jane@egi.eu", dns=["/DC=org/DC=example/CN=Jane Doe"], keys=["ssh-ed25519 AAAAjane jane"],
                      name="Jane Doe"),
               member("bob@egi.eu", vo=BETA)])
    assert site.run("once") == 0
    users = site.users()
    jane = users["jane@egi.eu"]
    assert jane.enabled and jane.groups == ("100",)
    assert jane.x509_dns == ("/DC=org/DC=example/CN=Jane Doe",)
    assert jane.ssh_keys == ("ssh-ed25519 AAAAjane jane",)
    assert (jane.email, jane.display_name) == ("jane@example.org", "Jane Doe")
    assert jane.properties[MARK] == "yes" and jane.properties["PERUN_ID"] == "jane@egi.eu"
    assert (jane.quota.instances, jane.quota.cores, jane.quota.ram_mb) == (4, 8, None)
    assert users["bob@egi.eu"].groups == ("101",) and users["bob@egi.eu"].quota is None
    created = [a for a in site.audit() if a["action"] == "create"]
    assert sorted(a["user"] for a in created) == ["bob@egi.eu", "jane@egi.eu"]
    assert all(a["result"] == "ok" and a["actor"].startswith("fedcloud-site-perun") for a in created)
    assert created[0]["input"] and created[0]["source"].endswith("perun.json")


def test_same_input_again_changes_nothing(site):
    site.push([member("jane@egi.eu")])
    assert site.run("once") == 0
    before = site.users()
    assert site.run("once") == 0
    assert site.users() == before
    assert len(site.audit()) == 1


def test_changed_attributes_are_updated_with_before_and_after_in_the_audit(site):
    site.push([member("jane@egi.eu", keys=["ssh-ed25519 AAAAold"])])
    site.run("once")
    site.push([member("jane@egi.eu", email="jane@new.example.org", keys=["ssh-ed25519 AAAAnew"])])
    assert site.run("once") == 0
    jane = site.users()["jane@egi.eu"]
    assert jane.email == "jane@new.example.org" and jane.ssh_keys == ("ssh-ed25519 AAAAnew",)
    update = site.audit()[-1]
    assert update["action"] == "update" and set(update["changes"]) == {"email", "ssh_keys"}
    assert update["before"]["email"] == "jane@example.org" and update["after"]["email"] == "jane@new.example.org"
    assert update["before"]["ssh_keys"] == ["ssh-ed25519 AAAAold"]


def test_dn_change_replaces_the_certificate_dns_and_keeps_the_account(site):
    site.push([member("jane@egi.eu", dns=["/DC=org/DC=old-ca/CN=Jane"])])
    site.run("once")
    user_id = site.users()["jane@egi.eu"].id
    site.push([member("jane@egi.eu", dns=["/DC=org/DC=new-ca/CN=Jane", "/DC=org/DC=new-ca/CN=Jane/CN=proxy"])])
    assert site.run("once") == 0
    jane = site.users()["jane@egi.eu"]
    assert jane.id == user_id
    assert jane.x509_dns == ("/DC=org/DC=new-ca/CN=Jane", "/DC=org/DC=new-ca/CN=Jane/CN=proxy")
    assert site.audit()[-1]["changes"] == ["x509_dns"]


def test_dns_in_other_attribute_spellings_are_normalised_so_they_do_not_flap(site):
    site.push([member("jane@egi.eu", dns=["/DC=org/DC=example/CN=Jane/E=jane@example.org"])])
    site.run("once")
    assert site.users()["jane@egi.eu"].x509_dns == ("/DC=org/DC=example/CN=Jane/emailAddress=jane@example.org",)
    site.push([member("jane@egi.eu", dns=["/DC=org/DC=example/CN=Jane/emailAddress=jane@example.org"])])
    site.run("once")
    assert [a["action"] for a in site.audit()] == ["create"]


def test_removed_member_is_disabled_then_reenabled_unchanged_when_back_within_grace(site):
    site.push([member("jane@egi.eu"), member("bob@egi.eu")])
    site.run("once")
    jane_id = site.users()["jane@egi.eu"].id
    site.push([member("bob@egi.eu")])
    assert site.run("once") == 0
    jane = site.users()["jane@egi.eu"]
    assert not jane.enabled and jane.groups == ("100",)  # disabled, groups kept, not deleted
    assert "jane@egi.eu" in site.state()["disabled"]
    disable = site.audit()[-1]
    assert disable["action"] == "disable" and "no longer a member of vo.alpha.eu" in disable["reason"]
    site.push([member("jane@egi.eu"), member("bob@egi.eu")])
    assert site.run("once") == 0
    jane = site.users()["jane@egi.eu"]
    assert jane.enabled and jane.id == jane_id
    assert site.audit()[-1]["action"] == "enable"
    assert site.state()["disabled"] == {}


def test_disabled_user_is_deleted_once_the_grace_period_is_over(site):
    site.push([member("jane@egi.eu"), member("bob@egi.eu")])
    site.run("once")
    site.push([member("bob@egi.eu")])
    site.run("once")
    assert site.run("once") == 0  # still within grace: kept, pending deletion
    assert "jane@egi.eu" in site.users()
    state = site.state()
    state["disabled"]["jane@egi.eu"]["since"] = (T0 - timedelta(days=8)).isoformat()
    site.save_state(state)
    assert site.run("once") == 0
    assert "jane@egi.eu" not in site.users()
    assert site.audit()[-1]["action"] == "delete"
    assert site.state()["disabled"] == {}


def _backdate(site, name):
    state = site.state()
    state["disabled"][name]["since"] = (T0 - timedelta(days=30)).isoformat()
    site.save_state(state)


def test_user_owning_vms_is_not_deleted_after_grace_by_default(site):
    site.site["users"].append({"id": "u-old", "name": "old@egi.eu", "groups": ["100"],
                               "properties": {MARK: "yes", "PERUN_ID": "old@egi.eu"}})
    site.site["vms"] = [{"id": "vm-1", "project": "p", "user": "u-old", "status": "stopped",
                         "created": "2026-01-01T00:00:00Z"}]
    site.write_site()
    site.push([member("bob@egi.eu")])
    site.run("once")
    assert not site.users()["old@egi.eu"].enabled
    _backdate(site, "old@egi.eu")
    assert site.run("once") == 0
    assert "old@egi.eu" in site.users()
    site.run("status")
    out = site.output()
    assert "old@egi.eu  disabled since" in out and "deletion blocked: owns 1 VM(s)" in out
    site.configure(delete_policy="always")
    assert site.run("once") == 0
    assert "old@egi.eu" not in site.users()


def test_delete_policy_never_keeps_disabled_users(site):
    site.configure(delete_policy="never")
    site.push([member("jane@egi.eu"), member("bob@egi.eu")])
    site.run("once")
    site.push([member("bob@egi.eu")])
    site.run("once")
    _backdate(site, "jane@egi.eu")
    assert site.run("once", "--dry-run") == 0
    assert "deletion blocked: delete_policy is never" in site.output()
    site.run("once")
    assert not site.users()["jane@egi.eu"].enabled


def test_suspended_or_expired_or_banned_members_are_disabled_with_the_status_as_reason(site):
    site.push([member("jane@egi.eu"), member("bob@egi.eu"), member("carol@egi.eu"), member("dan@egi.eu")])
    site.run("once")
    site.push([member("jane@egi.eu", status="SUSPENDED"), member("bob@egi.eu", status="EXPIRED"),
               member("carol@egi.eu", banned=True), member("dan@egi.eu")])
    assert site.run("sync", "--force") == 0
    users = site.users()
    assert [users[n].enabled for n in ("jane@egi.eu", "bob@egi.eu", "carol@egi.eu", "dan@egi.eu")] == \
        [False, False, False, True]
    reasons = {a["user"]: a["reason"] for a in site.audit() if a["action"] == "disable"}
    assert "vo.alpha.eu SUSPENDED" in reasons["jane@egi.eu"]
    assert "vo.alpha.eu EXPIRED" in reasons["bob@egi.eu"]
    assert "banned" in reasons["carol@egi.eu"]


def test_suspended_newcomer_gets_no_account(site):
    site.push([member("jane@egi.eu"), member("eve@egi.eu", status="SUSPENDED")])
    site.run("once")
    assert "eve@egi.eu" not in site.users()


def test_users_we_do_not_manage_are_never_touched(site):
    # "localuser" is a Perun id too: same name, no marker -> conflict, left alone
    site.push([member("jane@egi.eu"), member("localuser", email="perun@example.org"),
               member("serveradmin"), member("oneadmin")])
    assert site.run("once") == 0
    users = site.users()
    assert users["localuser"].email == "local@site.example" and MARK not in users["localuser"].properties
    assert users["serveradmin"].groups == ("0",) and users["serveradmin"].email is None
    assert users["oneadmin"].properties == {}
    assert {a["user"] for a in site.audit()} == {"jane@egi.eu"}
    site.run("once", "--dry-run")
    assert "conflict localuser" in " ".join(site.output().split())
    # gone from Perun: our user is disabled, the unmanaged one in the same group is not
    site.push([member("bob@egi.eu")])
    site.run("sync", "--force")
    users = site.users()
    assert not users["jane@egi.eu"].enabled and users["localuser"].enabled and users["serveradmin"].enabled


def test_vo_missing_from_the_input_is_left_alone(site):
    site.push([member("jane@egi.eu"), member("bob@egi.eu", vo=BETA)])
    site.run("once")
    site.push([member("jane@egi.eu")], vos=[ALPHA])
    assert site.run("once") == 0
    assert site.users()["bob@egi.eu"].enabled


def test_vo_not_configured_here_is_ignored(site):
    site.push([member("jane@egi.eu"), member("gus@egi.eu", vo=GAMMA)], vos=[ALPHA, BETA, GAMMA])
    assert site.run("once") == 0
    assert "gus@egi.eu" not in site.users()


def test_member_of_two_vos_leaving_one_loses_only_that_group(site):
    both = member("jane@egi.eu", more=[{"vo": BETA, "status": "VALID"}])
    site.push([both, member("bob@egi.eu")])
    site.run("once")
    assert set(site.users()["jane@egi.eu"].groups) == {"100", "101"}
    site.push([member("jane@egi.eu", vo=BETA), member("bob@egi.eu")])
    assert site.run("once") == 0
    jane = site.users()["jane@egi.eu"]
    assert jane.enabled and jane.groups == ("101",)


def test_user_name_template_with_vo_gives_one_account_per_vo(site):
    site.configure(user_name="{vo}_{id}")
    site.push([member("1042", more=[{"vo": BETA, "status": "VALID"}])])
    assert site.run("once") == 0
    users = site.users()
    assert users["vo.alpha.eu_1042"].groups == ("100",) and users["vo.beta.eu_1042"].groups == ("101",)


def test_missing_local_group_skips_that_vo_and_reports_it(site):
    site.vos["vo.delta.eu"] = {}
    site.configure(vos={ALPHA: {}, "vo.delta.eu": {}})
    site.push([member("jane@egi.eu"), member("dora@egi.eu", vo="vo.delta.eu")], vos=[ALPHA, "vo.delta.eu"])
    assert site.run("once") == 1
    assert "local group 'vo.delta.eu' does not exist" in site.output()
    assert site.users()["jane@egi.eu"].enabled and "dora@egi.eu" not in site.users()


def test_dry_run_prints_the_plan_and_changes_nothing(site):
    site.push([member("jane@egi.eu")])
    assert site.run("sync", "--dry-run") == 0
    out = site.output()
    assert "create   jane@egi.eu  groups=[100] dns=1 keys=0" in out
    assert "# plan: 1 create" in out
    assert "jane@egi.eu" not in site.users()
    assert not (site.state_dir / "perun-state.json").exists() and site.audit() == []


def test_status_reports_last_run_managed_users_and_pending_deletions(site):
    assert site.run("status") == 0
    assert "last run:          never" in site.output()
    site.push([member("jane@egi.eu"), member("bob@egi.eu")])
    site.run("once")
    site.push([member("bob@egi.eu")])
    site.run("once")
    assert site.run("status") == 0
    out = site.output()
    assert "ok" in out.splitlines()[0]
    assert "managed users:     2" in out
    assert "pending deletions: 1" in out and "jane@egi.eu  disabled since" in out and "deletion due" in out


def test_status_of_an_unreadable_state_names_the_file_and_fails_and_verbose_shows_the_parser_error(site):
    site.push([member("jane@egi.eu")])
    site.run("once")
    state_file = site.state_dir / "perun-state.json"
    state_file.write_text("{not json", encoding="utf-8")
    assert site.run("status") == 1
    out = site.output()
    assert f"fedcloud-site perun status: {state_file}: unreadable state" in out and "caused by" not in out
    assert site.run("status", "--verbose") == 1
    assert "caused by: JSONDecodeError:" in site.output()
