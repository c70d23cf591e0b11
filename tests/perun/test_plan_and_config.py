"""The planner's rules in isolation, the ``perun`` configuration section and the demo configuration."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import timedelta

import pytest
from perun_helpers import ALPHA, BETA, GAMMA, REPO, T0

from fedcloud_site.cloud.base import Quota, User
from fedcloud_site.config import load_config
from fedcloud_site.errors import ConfigError
from fedcloud_site.perun.model import Membership, MemberStatus, PerunUser, Snapshot
from fedcloud_site.perun.plan import PlanError, Planner, VOTarget
from fedcloud_site.perun.settings import Settings as PerunSettings

TARGETS = {ALPHA: VOTarget(ALPHA, "100", Quota(instances=2, cores=4)),
           BETA: VOTarget(BETA, "101", Quota(instances=5, ram_mb=1024)),
           GAMMA: VOTarget(GAMMA, "102")}
MANAGED = {"FEDCLOUD_SITE_MANAGED": "yes"}


def person(uid, *vos, status=MemberStatus.VALID, **kwargs):
    return PerunUser(id=uid, memberships=tuple(Membership(vo, status) for vo in vos), **kwargs)


def snapshot(*users, vos=(ALPHA, BETA, GAMMA)):
    return Snapshot("test", "json", T0, frozenset(vos), tuple(users), "digest")


def cloud_user(name, *groups, enabled=True, **kwargs):
    props = dict(MANAGED, PERUN_ID=name)
    props.update(kwargs.pop("properties", {}))
    return User(id=f"id-{name}", name=name, groups=groups, enabled=enabled, properties=props, **kwargs)


def plan(snap, users, covered=(ALPHA, BETA, GAMMA), **kwargs):
    extra = {k: kwargs.pop(k) for k in list(kwargs) if k in ("disabled_since", "adoptable", "vm_count",
                                                                 "applied_quotas")}
    return Planner(targets=TARGETS, **kwargs).plan(snap, covered, users, T0, **extra)


def test_member_of_several_vos_gets_every_group_and_the_largest_quota_of_each_kind():
    (create,) = plan(snapshot(person("jane", ALPHA, BETA)), []).actions
    assert create.spec.groups == ("100", "101")
    assert create.spec.quota == Quota(instances=5, cores=4, ram_mb=1024)


def test_leaving_a_covered_vo_keeps_the_group_of_a_vo_the_input_does_not_cover():
    user = cloud_user("jane", "100", "101", "7")  # 7: a local group of no VO
    (update,) = plan(snapshot(person("jane", BETA), vos=(ALPHA, BETA)), [user], covered=(ALPHA, BETA)).actions
    assert update.kind == "update" and update.spec.groups == ("101", "7")
    only_uncovered = plan(snapshot(person("bob", ALPHA), vos=(ALPHA,)), [user], covered=(ALPHA,)).actions
    (change,) = [a for a in only_uncovered if a.name == "jane"]
    assert change.kind == "update" and change.spec.groups == ("101", "7") and change.spec.enabled


def test_disabled_user_waits_for_the_grace_period_then_is_deleted_unless_it_owns_vms():
    user = cloud_user("jane", "100", enabled=False)
    waiting = plan(snapshot(person("bob", ALPHA)), [user], disabled_since={"jane": T0 - timedelta(days=1)})
    assert [a.name for a in waiting.actions] == ["bob"] and waiting.pending[0].due == T0 + timedelta(days=29)
    due = {"disabled_since": {"jane": T0 - timedelta(days=31)}}
    (delete, _) = plan(snapshot(person("bob", ALPHA)), [user], vm_count=lambda u: 0, **due).actions
    assert delete.kind == "delete" and delete.name == "jane"
    kept = plan(snapshot(person("bob", ALPHA)), [user], vm_count=lambda u: 2, **due)
    assert kept.count("delete") == 0 and kept.pending[0].blocked == "owns 2 VM(s)"
    never = plan(snapshot(person("bob", ALPHA)), [user], delete_policy="never", **due)
    assert never.pending[0].blocked == "delete_policy is never"


def test_disabled_user_found_without_a_record_starts_its_grace_period_now():
    result = plan(snapshot(person("bob", ALPHA)), [cloud_user("jane", "100", enabled=False)])
    assert result.disabled_since == {"jane": T0} and result.pending[0].due == T0 + timedelta(days=30)


def test_quota_already_applied_is_not_set_again_when_the_backend_does_not_report_it():
    user = cloud_user("jane", "100")
    first = plan(snapshot(person("jane", ALPHA)), [user])
    assert [a.changes for a in first.actions] == [("quota",)]
    again = plan(snapshot(person("jane", ALPHA)), [user],
                 applied_quotas={"jane": {"instances": 2, "cores": 4, "ram_mb": None}})
    assert again.actions == [] and again.unchanged == 1


def test_user_marked_with_another_value_is_not_ours():
    user = cloud_user("jane", "100", properties={"FEDCLOUD_SITE_MANAGED": "frozen"})
    result = plan(snapshot(person("bob", ALPHA), person("jane", ALPHA)), [user])
    assert result.conflicts == ["jane"] and [a.name for a in result.actions] == ["bob"]


def test_half_created_user_in_the_adoptable_list_is_taken_over():
    half = User(id="7", name="jane", groups=())
    (action,) = plan(snapshot(person("jane", ALPHA)), [half], adoptable={"jane"}).actions
    assert action.kind == "update" and action.spec.properties["FEDCLOUD_SITE_MANAGED"] == "yes"


def test_protected_name_is_never_created_or_changed():
    result = plan(snapshot(person("admin", ALPHA)), [], protected_users=frozenset({"admin"}))
    assert result.actions == [] and result.conflicts == ["admin"]


def test_two_people_mapping_to_one_name_is_a_plan_error():
    with pytest.raises(PlanError, match="both map to local user 'x'"):
        plan(snapshot(person("a", ALPHA), person("b", ALPHA)), [], template="x{id:.0}")


# -- configuration ------------------------------------------------------------------------------------------
def _config(write_config, perun):
    return write_config("site: {name: S}\nvos: {vo.alpha.eu: {}, vo.beta.eu: {group: beta-users}}\n"
                        f"perun:\n{perun}")


@pytest.mark.parametrize("perun, problem", [
    ("  user_name: '{login}'\n", "user_name: '{login}' must use {id} and may use {vo} (unknown: login)"),
    ("  max_change_fraction: 1.5\n", "max_change_fraction: must be more than 0 and at most 1"),
    ("  source: rpc\n", "rpc.url: required when source is rpc"),
    ("  source: rpc\n  rpc: {url: 'http://perun.example.org'}\n", "rpc.url: must be an https:// URL"),
    ("  source: rpc\n  rpc: {url: 'https://p', username: u}\n", "rpc.username and rpc.password: required"),
    ("  vos: {vo.unknown.eu: {}}\n", "vos.vo.unknown.eu: not a VO of the top-level vos section"),
    ("  delete_policy: sometimes\n", "expected one of 'never', 'no_vms', 'always'"),
])
def test_bad_perun_settings_are_named(write_config, perun, problem):
    with pytest.raises(ConfigError) as info:
        load_config(_config(write_config, perun))
    assert problem in str(info.value)


def test_perun_defaults_mirror_every_vo_into_its_group(write_config):
    config = load_config(_config(write_config, "  file: perun.json\n"))
    settings = config.section(PerunSettings)
    assert sorted(settings.vos) == [ALPHA, BETA]
    assert settings.group_of(config, BETA) == "beta-users" and settings.group_of(config, ALPHA) == ALPHA
    assert settings.grace_period == 30 * 86400 and settings.delete_policy == "no_vms"
    password = write_config("s3cret\n", name="perun.pass")
    config = load_config(_config(write_config, "  source: rpc\n  rpc: {url: 'https://p', username: u, "
                                               f"password_file: {password}}}\n  vos: {{vo.alpha.eu: {{vo_id: 1}}}}\n"))
    rpc = config.section(PerunSettings).rpc
    assert rpc.password == "s3cret" and rpc.auth_path == "ba"
    assert "s3cret" not in str(config.as_plain())


# -- the demo ------------------------------------------------------------------------------------------------
def test_demo_configuration_syncs_its_propagation_file_on_the_static_backend(tmp_path):
    etc = tmp_path / "etc" / "fedcloud-site"
    shutil.copytree(REPO / "etc" / "fedcloud-site", etc)

    def run(*args):
        return subprocess.run([sys.executable, "-m", "fedcloud_site.cli", "--config", str(etc / "demo.yaml"),
                               "perun", *args], capture_output=True, text=True, timeout=120, cwd=str(REPO))

    first = run("once")
    assert first.returncode == 0, first.stderr
    assert "create=3" in first.stderr and "status='ok'" in first.stderr
    again = run("once", "--dry-run")
    assert again.returncode == 0 and "3 unchanged" in again.stdout
    status = run("status")
    assert status.returncode == 0 and "managed users:     3" in status.stdout
    assert (tmp_path / "demo-output" / "perun" / "audit.jsonl").exists()
