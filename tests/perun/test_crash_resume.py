"""A crash or shutdown in the middle of an apply: the journal lets the next run finish it exactly once."""

from __future__ import annotations

import json
from collections import Counter

from perun_helpers import member

from fedcloud_site.cloud import open_backend
from fedcloud_site.config import load_config
from fedcloud_site.errors import JobIncomplete
from fedcloud_site.filelock import FileLock
from fedcloud_site.log import get_logger
from fedcloud_site.perun.settings import Settings as PerunSettings
from fedcloud_site.perun.sync import Synchroniser


def test_process_killed_mid_apply_is_finished_by_the_next_run_without_doing_anything_twice(site):
    names = [f"user{i:04d}@egi.eu" for i in range(100)]
    site.push([member(n) for n in names])
    site.kill_during_apply(done=20)
    assert (site.state_dir / "journal.json").exists()
    made = len(site.users())
    assert 3 + 20 <= made < 3 + 100  # some, not all, users were created before the crash

    assert site.run("status") == 0
    assert "interrupted apply:" in site.output()
    assert site.run("once") == 0
    assert "finishing an interrupted apply" in site.output()
    users = site.users()
    assert all(users[n].enabled for n in names)
    assert not (site.state_dir / "journal.json").exists() and not (site.state_dir / "journal.progress").exists()
    backend_users = [u.name for u in open_backend(load_config(site.config_path)).list_users()]
    assert Counter(backend_users).most_common(1)[0][1] == 1  # nobody created twice
    audited = [a for a in site.audit() if a["action"] == "create"]
    assert {a["user"] for a in audited} == set(names)  # every change audited
    fresh = Counter(a["user"] for a in audited if a["result"] == "ok")
    assert max(fresh.values()) == 1  # a create redone after the crash says it completed an existing user
    assert all(a["result"] == "ok (user already existed: completed)" for a in audited if fresh[a["user"]] == 0)
    assert site.state()["last_applied"]["digest"]
    lines = len(site.audit())
    assert site.run("once") == 0  # and nothing left to do
    assert len(site.audit()) == lines


def test_shutdown_mid_apply_stops_at_a_safe_point_and_the_next_run_resumes(site):
    site.push([member(f"u{i}@egi.eu") for i in range(10)])
    config = load_config(site.config_path)
    calls = {"n": 0}

    def stop_after_four() -> bool:
        calls["n"] += 1
        return calls["n"] > 4

    syncer = Synchroniser(config, config.section(PerunSettings), lambda: open_backend(config), get_logger("perun"),
                          stopping=stop_after_four)
    try:
        syncer.run()
        raise AssertionError("expected the apply to stop")
    except JobIncomplete as exc:
        assert "shutdown requested" in str(exc)
    assert len([n for n in site.users() if n.startswith("u")]) == 4
    journal = json.loads((site.state_dir / "journal.json").read_text())
    assert len(journal["actions"]) == 10
    assert site.state()["last_run"]["result"] == "incomplete"
    assert site.run("once") == 0
    assert len([n for n in site.users() if n.startswith("u")]) == 10
    assert len([a for a in site.audit() if a["action"] == "create"]) == 10


def test_dry_run_reports_an_interrupted_apply_without_finishing_it(site):
    site.push([member(f"u{i}@egi.eu") for i in range(3)])
    config = load_config(site.config_path)
    syncer = Synchroniser(config, config.section(PerunSettings), lambda: open_backend(config), get_logger("perun"),
                          stopping=lambda: True)
    try:
        syncer.run()
    except JobIncomplete:
        pass
    assert site.run("sync", "--dry-run") == 0
    assert "an interrupted apply has 3 of 3 changes left" in site.output()
    assert (site.state_dir / "journal.json").exists()


def test_half_created_user_without_our_marker_is_taken_over_after_a_crash(site):
    """A backend that creates a user in several calls may die between them: the journal says it was ours."""
    site.push([member("jane@egi.eu")])
    (site.state_dir).mkdir()
    action = {"kind": "create", "name": "jane@egi.eu", "user_id": None, "reason": "VALID member of vo.alpha.eu",
              "spec": {"name": "jane@egi.eu", "groups": ["100"], "email": "jane@example.org",
                       "display_name": "Jane", "enabled": True, "x509_dns": ["/DC=org/DC=example/CN=jane"],
                       "ssh_keys": [], "properties": {"FEDCLOUD_SITE_MANAGED": "yes", "PERUN_ID": "jane@egi.eu"},
                       "quota": None}}
    (site.state_dir / "journal.json").write_text(json.dumps({"meta": {"started": "2026-01-10T12:00:00+00:00"},
                                                             "actions": [action]}))
    (site.state_dir / "journal.progress").write_text('{"seq": 0, "phase": "started"}\n')
    site.site["users"].append({"id": "u-half", "name": "jane@egi.eu", "groups": []})  # made, not finished
    site.write_site()
    assert site.run("once") == 0
    jane = site.users()["jane@egi.eu"]
    assert jane.id == "u-half" and jane.properties["FEDCLOUD_SITE_MANAGED"] == "yes" and jane.groups == ("100",)
    assert site.audit()[0]["result"] == "ok (user already existed: completed)"


def test_a_sync_while_another_holds_the_sync_lock_changes_nothing_and_leaves_the_work_for_later(site):
    site.push([member("jane@egi.eu")])
    with FileLock(site.state_dir / "sync.lock"):
        assert site.run("once") == JobIncomplete.exit_status
        assert "another Perun sync holds" in site.output()
        assert "jane@egi.eu" not in site.users()
    assert site.run("once") == 0
    assert site.users()["jane@egi.eu"].enabled
