"""Image life cycle: new versions replace old ones, retired images are deprecated then deleted."""

from __future__ import annotations

from datetime import timedelta

from fedcloud_site import cli
from fedcloud_site.cloud import open_backend
from fedcloud_site.config import load_config
from fedcloud_site.images.state import StateDB
from fedcloud_site.images.sync import Sync
from fedcloud_site.log import get_logger
from fedcloud_site.timeutil import iso_utc, utcnow


def sync_at(world, moment):
    """One in-process sync as if it were ``moment`` (for expiry and grace periods)."""
    config = load_config(world.config_path)
    backend = open_backend(config)
    return Sync(config, config.section("images"), lambda: backend, get_logger("test"), now=lambda: moment).run()


def test_image_removed_from_the_list_is_deleted_after_the_grace_period(world):
    keep, drop = world.image("keep.raw"), world.image("drop.raw")
    world.publish(world.image_list([keep, drop]))
    world.write_config(grace_period="1h")
    assert world.sync() == 0
    world.publish(world.image_list([keep], version="20250101000000"))
    assert world.sync() == 0
    [deprecated] = world.by_state("deprecated")
    assert deprecated["identifier"] == drop["dc:identifier"] and "no longer in list" in deprecated["reason"]
    image = world.cloud().get_image(deprecated["image_id"])
    assert image.status == "deactivated" and "fedcloud_site_deprecated_at" in image.properties
    summary = sync_at(world, utcnow() + timedelta(hours=2))
    assert summary.removed == 1
    assert [i.properties["appdb_id"] for i in world.cloud_images()] == [keep["dc:identifier"]]
    assert world.by_state("removed")[0]["identifier"] == drop["dc:identifier"]
    cached = [p.relative_to(world.tmp / "cache").parts[1] for p in (world.tmp / "cache").rglob("*") if p.is_file()]
    assert cached == [keep["dc:identifier"]]


def test_new_version_replaces_the_old_one_once_registered(world):
    old = world.image("v1.raw", identifier="app-1", seed=1)
    world.publish(world.image_list([old]))
    assert world.sync() == 0
    [old_row] = world.by_state("registered")
    new = world.image("v2.raw", identifier="app-1", seed=2, **{"hv:version": "2"})
    world.publish(world.image_list([new], version="20250101000000"))
    assert world.sync() == 0
    [current] = world.by_state("registered")
    assert current["version"] == "2" and current["image_id"] != old_row["image_id"]
    [gone] = world.by_state("removed")
    assert gone["image_id"] == old_row["image_id"] and "replaced by version 2" in gone["reason"]
    [image] = world.cloud_images()
    assert image.properties["image_hash"] == "sha512:" + new["sl:checksum:sha512"]


def test_failed_new_version_keeps_the_old_one_registered(world):
    from fedcloud_testing.image_server import Fault

    world.publish(world.image_list([world.image("v1.raw", identifier="app-1", seed=1)]))
    assert world.sync() == 0
    new = world.image("v2.raw", identifier="app-1", seed=2, **{"hv:version": "2"})
    world.server.inject("/images/v2.raw", Fault("corrupt"))
    world.publish(world.image_list([new], version="20250101000000"))
    assert world.sync() == 1
    assert [r["version"] for r in world.by_state("registered")] == ["1"]
    assert [r["version"] for r in world.by_state("failed")] == ["2"]
    assert len(world.cloud_images()) == 1


def test_metadata_change_updates_the_registered_image_in_place(world):
    entry = world.image("a.raw")
    world.publish(world.image_list([entry]))
    assert world.sync() == 0
    [before] = world.cloud_images()
    world.publish(world.image_list([dict(entry, **{"dc:title": "Renamed", "sl:osversion": "24.04"})],
                                   version="20250101000000"))
    assert world.sync() == 0
    [after] = world.cloud_images()
    assert after.id == before.id and after.name == "Renamed" and after.properties["os_version"] == "24.04"
    assert len(world.server.requests_for("/images/a.raw")) == 1


def test_image_in_use_is_not_deleted_until_its_vms_are_gone(world):
    entry = world.image("a.raw")
    world.publish(world.image_list([entry]))
    assert world.sync() == 0
    [row] = world.by_state("registered")
    world.use_image(row["image_id"])
    world.publish(world.image_list([], version="20250101000000"))
    assert world.sync() == 0
    [kept] = world.by_state("deprecated")
    assert "in use by VMs" in kept["reason"]
    assert world.cloud().get_image(row["image_id"]).status == "deactivated"
    world.site["vms"] = []
    world.write_config()
    assert world.sync() == 0
    assert world.by_state("removed") and world.cloud_images() == []


def test_expired_list_retires_all_its_images(world):
    world.publish(world.image_list([world.image("a.raw"), world.image("b.raw")],
                                   expires=iso_utc(utcnow() + timedelta(hours=1))))
    assert world.sync() == 0
    summary = sync_at(world, utcnow() + timedelta(hours=2))
    assert summary.lists_failed == 1 and summary.removed == 2
    assert all("expired" in r["reason"] for r in world.status())
    assert world.cloud_images() == []


def test_expired_image_is_retired_while_the_list_stays(world):
    soon = world.image("soon.raw", **{"dc:date:expires": iso_utc(utcnow() + timedelta(hours=1))})
    later = world.image("later.raw")
    world.publish(world.image_list([soon, later]))
    assert world.sync() == 0
    assert len(world.by_state("registered")) == 2
    sync_at(world, utcnow() + timedelta(hours=2))
    assert [r["identifier"] for r in world.by_state("registered")] == [later["dc:identifier"]]
    assert "image expired" in world.by_state("removed")[0]["reason"]


def test_removed_subscription_has_its_images_retired(world):
    world.publish(world.image_list([world.image("a.raw")]))
    assert world.sync() == 0
    world.write_config(subscriptions=[])
    assert world.sync() == 0
    assert "subscription removed" in world.by_state("removed")[0]["reason"]
    assert world.cloud_images() == []


def test_images_we_did_not_create_are_never_touched(world):
    world.site["images"] = [{"id": "site-own", "name": "Image a.raw", "properties": {"appdb_id": "x"}}]
    world.publish(world.image_list([world.image("a.raw")]))
    world.write_config()
    assert world.sync() == 0
    [row] = world.by_state("registered")
    backend = world.cloud()
    backend.update_image(row["image_id"], {"fedcloud_site_managed_by": None})  # an admin took it over
    world.publish(world.image_list([], version="20250101000000"))
    assert world.sync() == 0
    ids = {i.id for i in world.cloud().list_images()}
    assert {"site-own", row["image_id"]} <= ids
    assert "not created by fedcloud-site" in world.by_state("removed")[0]["reason"]


def test_lost_state_adopts_registered_images_instead_of_uploading_again(world):
    world.publish(world.image_list([world.image("a.raw")]))
    assert world.sync() == 0
    (world.tmp / "state" / "images.sqlite").unlink()
    for extra in (world.tmp / "state").glob("images.sqlite-*"):
        extra.unlink()
    assert world.sync() == 0
    assert len(world.cloud_images()) == 1
    assert len(world.server.requests_for("/images/a.raw")) == 1
    assert world.by_state("registered")


def test_duplicate_copies_of_one_version_are_cleaned_up(world):
    world.publish(world.image_list([world.image("a.raw")]))
    assert world.sync() == 0
    [image] = world.cloud_images()
    backend = world.cloud()
    import io

    from fedcloud_site.cloud.base import ImageSpec

    backend.create_image(ImageSpec(name=image.name, disk_format="raw", properties=dict(image.properties)),
                         io.BytesIO(b"dup"))
    assert len(world.cloud_images()) == 2
    (world.tmp / "state" / "images.sqlite").unlink()
    assert world.sync() == 0
    assert len(world.cloud_images()) == 1


def test_filter_selects_images_by_identifier_title_and_os(world):
    ubuntu = world.image("u.raw", title="EGI Ubuntu 22.04")
    centos = world.image("c.raw", title="EGI CentOS 7", **{"sl:osname": "CentOS"})
    other = world.image("o.raw", title="Something else")
    world.publish(world.image_list([ubuntu, centos, other]))
    world.subscription["filter"] = {"titles": ["^EGI "], "os": ["ubuntu"]}
    world.write_config()
    assert world.sync() == 0
    assert [r["identifier"] for r in world.status()] == [ubuntu["dc:identifier"]]


def test_approval_policy_waits_for_approve_command(world, capsys):
    entry = world.image("a.raw")
    world.publish(world.image_list([entry]))
    world.subscription["policy"] = "approve"
    world.write_config()
    assert world.sync() == 0
    [row] = world.status()
    assert row["state"] == "awaiting-approval" and "images approve fedcloud" in row["reason"]
    assert world.server.requests_for("/images/a.raw") == []
    assert cli.main(["--config", str(world.config_path), "images", "approve", "fedcloud",
                     entry["dc:identifier"]]) == 0
    assert world.sync() == 0
    assert world.by_state("registered")


def test_trigger_file_is_rewritten_when_images_change(world):
    trigger = world.tmp / "state" / "images.changed"
    world.publish(world.image_list([world.image("a.raw")]))
    assert world.sync() == 0
    first = trigger.stat().st_mtime_ns
    assert '"registered": 1' in trigger.read_text()
    assert world.sync() == 0
    assert trigger.stat().st_mtime_ns == first  # nothing changed, not touched


def test_state_records_list_version_and_identifier(world):
    world.publish(world.image_list([world.image("a.raw")], version="20240202000000"))
    assert world.sync() == 0
    with StateDB(world.tmp / "state" / "images.sqlite") as db:
        row = db.subscription("fedcloud")
    assert row.list_version == "20240202000000" and row.state == "ok" and row.list_identifier
