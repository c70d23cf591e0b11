"""``images once --dry-run``: lists are fetched and verified, and what a real run would register, replace,
deprecate and delete is logged and counted (``would_*`` in the run summary); nothing changes."""

from __future__ import annotations

from datetime import timedelta

from fedcloud_site.cloud import open_backend
from fedcloud_site.config import load_config
from fedcloud_site.images.sync import Sync
from fedcloud_site.log import get_logger
from fedcloud_site.timeutil import iso_utc, utcnow


def preview_at(world, moment):
    """An in-process dry run as if it were ``moment``."""
    config = load_config(world.config_path)
    backend = open_backend(config)
    return Sync(config, config.section("images"), lambda: backend, get_logger("test"), dry_run=True,
                now=lambda: moment).run()


def lines_with(text: str, needle: str) -> list:
    return [line for line in text.splitlines() if needle in line]


def test_dry_run_previews_a_replacement_and_a_removal_and_changes_nothing(world, capsys):
    world.publish(world.image_list([world.image("a1.raw", identifier="a", seed=1), world.image("b.raw"),
                                    world.image("c.raw")]))
    assert world.sync() == 0
    before = world.status()
    world.publish(world.image_list([world.image("a2.raw", identifier="a", seed=2, **{"hv:version": "2"}),
                                    world.image("c.raw")], version="20250101000000"))
    capsys.readouterr()
    assert world.sync("--dry-run") == 0
    err = capsys.readouterr().err
    [replaced] = lines_with(err, "would deprecate once the new version is active")
    assert "identifier='a'" in replaced and "replaced by version 2" in replaced
    [removed] = lines_with(err, "event='dry run: would deprecate'")
    assert "no longer in list" in removed and "b.raw" not in removed
    [new] = lines_with(err, "would download and register")
    assert "identifier='a'" in new and "version='2'" in new
    [summary] = lines_with(err, "run summary")
    assert "would_register=1" in summary and "would_deprecate=2" in summary and "deprecated=0" in summary
    assert world.status() == before
    assert {i.status for i in world.cloud_images()} == {"active"} and len(world.cloud_images()) == 3
    assert world.server.requests_for("/images/a2.raw") == []
    assert "nothing would change" not in err


def test_a_dry_run_on_a_synced_site_says_that_nothing_would_change(world, capsys):
    world.publish(world.image_list([world.image("a.raw")]))
    assert world.sync() == 0
    capsys.readouterr()
    assert world.sync("--dry-run") == 0
    err = capsys.readouterr().err
    assert "dry run: nothing would change" in err and "would_" not in err


def test_dry_run_previews_deletions_due_after_the_grace_period_and_a_removed_subscription(world, capsys):
    world.publish(world.image_list([world.image("a.raw"), world.image("b.raw")]))
    assert world.sync() == 0
    world.publish(world.image_list([world.image("b.raw")], version="20250101000000"))
    world.write_config(grace_period="1h")
    assert world.sync() == 0
    [deprecated] = world.by_state("deprecated")
    capsys.readouterr()
    assert world.sync("--dry-run") == 0
    assert "would delete" not in capsys.readouterr().err  # still within the grace period
    world.write_config(grace_period=0)
    assert world.sync("--dry-run") == 0
    [deletion] = lines_with(capsys.readouterr().err, "would delete")
    assert deprecated["image_id"] in deletion
    world.write_config(subscriptions=[])
    assert world.sync("--dry-run") == 0
    err = capsys.readouterr().err
    [gone] = lines_with(err, "event='dry run: would deprecate'")
    assert "subscription removed" in gone
    assert lines_with(err, "would delete")
    assert len(world.by_state("deprecated")) == 1 and len(world.by_state("registered")) == 1
    assert len(world.cloud_images()) == 2


def test_dry_run_after_the_list_expired_previews_retiring_all_its_images(world):
    world.publish(world.image_list([world.image("a.raw"), world.image("b.raw")],
                                   expires=iso_utc(utcnow() + timedelta(hours=1))))
    assert world.sync() == 0
    summary = preview_at(world, utcnow() + timedelta(hours=2))
    # the world's grace_period is 0: the real run deletes what it deprecates in the same run
    assert summary.lists_failed == 1 and summary.would == {"deprecate": 2, "delete": 2}
    assert summary.as_dict()["would_deprecate"] == 2 and summary.deprecated == 0
    assert len(world.by_state("registered")) == 2


def test_dry_run_previews_reactivating_a_deprecated_image_the_list_wants_again(world):
    entry = world.image("a.raw")
    world.publish(world.image_list([entry]))
    assert world.sync() == 0
    world.publish(world.image_list([], version="20250101000000"))
    world.write_config(grace_period=0)
    assert preview_at(world, utcnow()).would == {"deprecate": 1, "delete": 1}  # no grace: deleted in the same run
    world.write_config(grace_period="1h")
    assert world.sync() == 0
    world.publish(world.image_list([entry], version="20260101000000"))
    world.write_config(grace_period=0)
    assert preview_at(world, utcnow()).would == {"reactivate": 1}  # not deleted: a real run reactivates it first


def run_at(world, moment):
    """An in-process real run as if it were ``moment``."""
    config = load_config(world.config_path)
    backend = open_backend(config)
    return Sync(config, config.section("images"), lambda: backend, get_logger("test"), now=lambda: moment).run()


def test_the_dry_run_announces_exactly_what_the_real_run_then_does(world):
    a1, b, c, d = (world.image("a1.raw", identifier="a", seed=1), world.image("b.raw", identifier="b"),
                   world.image("c.raw", identifier="c"), world.image("d.raw", identifier="d"))
    world.publish(world.image_list([a1, b, c, d]))
    world.write_config(grace_period="1h")
    assert world.sync() == 0
    world.publish(world.image_list([b], version="20250101000000"))
    assert world.sync() == 0  # a1, c and d deprecated
    a2 = world.image("a2.raw", identifier="a", seed=2, **{"hv:version": "2"})
    world.publish(world.image_list([a2, d, world.image("e.raw", identifier="e")], version="20260101000000"))
    world.write_config(grace_period=0)  # what is deprecated now is deleted in the same run
    moment = utcnow() + timedelta(minutes=1)
    before = world.status()

    preview = preview_at(world, moment)
    assert world.status() == before
    real = run_at(world, moment)

    # a2 and e registered; b gone from the list: deprecated, then deleted like a1 and c; d wanted again
    assert preview.would == {"register": 2, "deprecate": 1, "delete": 3, "reactivate": 1}
    assert (real.registered, real.deprecated, real.removed) == (2, 1, 3)
    assert world.by_state("deprecated") == []
    assert {r["identifier"] for r in world.by_state("registered")} == {"a", "d", "e"}
    assert {r["identifier"] for r in world.by_state("registered")} == {"a", "d", "e"}
