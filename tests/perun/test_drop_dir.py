"""The drop directory Perun's push writes into: new files processed, bad ones set aside, refused ones kept."""

from __future__ import annotations

import os
import time

from perun_helpers import member

from fedcloud_site.cloud import open_backend
from fedcloud_site.config import load_config
from fedcloud_site.errors import JobRefused
from fedcloud_site.log import get_logger
from fedcloud_site.perun.daemon import jobs
from fedcloud_site.perun.settings import Settings as PerunSettings
from fedcloud_site.perun.sync import Synchroniser


def _drop_site(site):
    drop = site.root / "incoming"
    drop.mkdir()
    site.configure(file=None, drop_dir="incoming")
    return drop


def test_new_file_in_the_drop_dir_is_applied_and_archived(site):
    drop = _drop_site(site)
    site.push([member("jane@egi.eu")], path=drop / "push-1.json")
    assert site.run("once") == 0
    assert site.users()["jane@egi.eu"].enabled
    assert list(drop.iterdir()) == []
    archived = sorted(p.name for p in (site.state_dir / "inputs").iterdir())
    assert len(archived) == 1 and archived[0].endswith("-applied-push-1.json")
    assert (site.state_dir / "last-input").exists()


def test_without_new_files_the_last_input_repairs_drift(site):
    drop = _drop_site(site)
    site.push([member("jane@egi.eu")], path=drop / "push-1.json")
    site.run("once")
    state = (site.root / "cloud.json")
    text = state.read_text().replace('"enabled": true', '"enabled": false')  # someone disabled jane by hand
    state.write_text(text)
    assert site.run("once") == 0
    assert site.users()["jane@egi.eu"].enabled


def test_newest_file_wins_and_supersedes_older_ones(site):
    drop = _drop_site(site)
    old = site.push([member("jane@egi.eu")], path=drop / "a.json")
    new = site.push([member("jane@egi.eu"), member("bob@egi.eu")], path=drop / "b.json")
    os.utime(old, (time.time() - 60, time.time() - 60))
    assert site.run("once") == 0
    assert set(site.users()) >= {"jane@egi.eu", "bob@egi.eu"}
    names = sorted(p.name for p in (site.state_dir / "inputs").iterdir())
    assert any(n.endswith("-applied-b.json") for n in names) and any(n.endswith("-superseded-a.json") for n in names)
    assert not new.exists() and not old.exists()


def test_partial_and_hidden_files_are_not_read(site):
    drop = _drop_site(site)
    (drop / ".push.json").write_text("{")
    (drop / "push.json.tmp").write_text("{")
    assert site.run("once") == 0
    assert "no propagation file received yet" in site.output()
    assert (drop / ".push.json").exists() and (drop / "push.json.tmp").exists()


def test_unparsable_file_is_moved_to_rejected_with_its_reason(site):
    drop = _drop_site(site)
    (drop / "bad.json").write_text('{"version": "1.0.0", "vos": [}\n')
    assert site.run("once") == JobRefused.exit_status
    assert not (drop / "bad.json").exists()
    reason = (drop / "rejected" / "bad.json.reason").read_text()
    assert "bad.json: line 1 column 30: invalid JSON" in reason
    assert (drop / "rejected" / "bad.json").exists()


def test_refused_file_waits_in_the_drop_dir_until_forced(site):
    drop = _drop_site(site)
    site.push([member(f"u{i}@egi.eu") for i in range(10)], path=drop / "1.json")
    site.run("once")
    site.push([member("u0@egi.eu")], path=drop / "2.json")
    assert site.run("once") == JobRefused.exit_status
    assert (drop / "2.json").exists()
    assert site.run("status") == 0
    assert "pending inputs:" in site.output()
    assert site.run("sync", "--force") == 0
    assert not (drop / "2.json").exists()
    assert sum(u.enabled for n, u in site.users().items() if n.startswith("u")) == 1


def test_explicit_file_option_applies_that_file(site):
    other = site.push([member("zoe@egi.eu")], path=site.root / "manual.json")
    assert site.run("sync", "--file", str(other)) == 0
    assert "zoe@egi.eu" in site.users()
    assert other.exists()


def test_daemon_watches_the_drop_dir_more_often_than_the_full_sync_interval(site):
    _drop_site(site)
    site.configure(interval="1h", watch_interval="20s")
    (job,) = jobs(load_config(site.config_path))
    assert job.interval == 20
    site.configure(drop_dir=None, file="perun.json")
    (job,) = jobs(load_config(site.config_path))
    assert job.interval == 3600


def test_daemon_runs_a_full_sync_only_for_a_new_file_or_when_the_interval_is_over(site):
    drop = _drop_site(site)
    site.configure(interval="1h")
    config = load_config(site.config_path)

    def scheduled_run():
        return Synchroniser(config, config.section(PerunSettings), lambda: open_backend(config), get_logger("perun"),
                            scheduled=True).run()

    site.push([member("jane@egi.eu")], path=drop / "1.json")
    assert scheduled_run()["create"] == 1
    first = site.state()["last_run"]["time"]
    assert "skipped" in scheduled_run()  # nothing new, full sync not due
    assert site.state()["last_run"]["time"] == first
    site.push([member("jane@egi.eu"), member("bob@egi.eu")], path=drop / "2.json")
    assert scheduled_run()["create"] == 1
    state = site.state()
    state["last_run"]["time"] = "2000-01-01T00:00:00Z"  # the interval is over: drift repair
    site.save_state(state)
    assert "skipped" not in scheduled_run()
