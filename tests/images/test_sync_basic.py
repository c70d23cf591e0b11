"""Good lists: images downloaded, verified and registered once, with their origin properties."""

from __future__ import annotations

import json

from fedcloud_site import cli


def test_good_list_registers_every_image_with_origin_properties(world):
    first, second = world.image("ubuntu.raw"), world.image("centos.raw", **{"sl:osname": "CentOS", "sl:osversion": "7"})
    world.publish(world.image_list([first, second]))
    assert world.sync() == 0
    registered = world.by_state("registered")
    assert {r["identifier"] for r in registered} == {first["dc:identifier"], second["dc:identifier"]}
    images = {i.properties["appdb_id"]: i for i in world.cloud_images()}
    image = images[first["dc:identifier"]]
    assert image.name == "Image ubuntu.raw"
    assert image.properties["vmcatcher_event_ad_mpuri"] == first["ad:mpuri"]
    assert image.properties["image_hash"] == "sha512:" + first["sl:checksum:sha512"]
    assert image.properties["image_list"] == "fedcloud"
    assert image.properties["vmcatcher_event_il_dc_identifier"] == world.image_list([])["hv:imagelist"][
        "dc:identifier"]
    assert (image.properties["os_distro"], image.properties["os_version"]) == ("ubuntu", "22.04")
    assert images[second["dc:identifier"]].properties["os_distro"] == "centos"
    assert image.properties["architecture"] == "x86_64"
    assert image.disk_format == "raw" and image.size == 300_000
    assert image.owner == "p-fedcloud" and image.visibility == "shared" and list(image.members) == []


def test_second_run_registers_nothing_twice_and_uses_a_conditional_request(world):
    world.publish(world.image_list([world.image("a.raw")]))
    assert world.sync() == 0
    assert world.sync() == 0
    assert len(world.cloud_images()) == 1
    list_requests = world.server.requests_for(world.list_path)
    assert list_requests[-1].status == 304
    assert "If-None-Match" in list_requests[-1].headers
    assert len(world.server.requests_for("/images/a.raw")) == 1


def test_status_json_lists_each_version_with_state_and_reason(world, capsys):
    world.publish(world.image_list([world.image("a.raw")]))
    world.sync()
    capsys.readouterr()
    assert cli.main(["--config", str(world.config_path), "images", "status", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1
    assert {"subscription", "identifier", "version", "state", "reason"} <= set(rows[0])
    assert rows[0]["state"] == "registered" and rows[0]["reason"] is None and rows[0]["version"] == "1"


def test_images_once_without_subscriptions_succeeds(world):
    world.write_config(subscriptions=[])
    assert world.sync() == 0
    assert world.status() == []


def test_one_failing_subscription_does_not_stop_the_others(world):
    world.publish(world.image_list([world.image("a.raw")]))
    good = {"name": "good", "url": world.server.url + world.list_path, "endorser_dn": world.pki.endorser.dn,
            "ca_dn": world.pki.ca.dn}
    broken = dict(good, name="broken", url=world.server.url + "/missing.list")
    world.write_config(subscriptions=[broken, good])
    assert world.sync() == 1
    assert [r["subscription"] for r in world.by_state("registered")] == ["good"]


def test_dry_run_verifies_lists_but_downloads_and_registers_nothing(world, capsys):
    world.publish(world.image_list([world.image("a.raw")]))
    world.write_config()
    assert world.sync("--dry-run") == 0
    assert "would download and register" in capsys.readouterr().err
    assert world.server.requests_for("/images/a.raw") == []
    assert world.status() == [] and world.cloud_images() == []


def test_sync_command_is_an_alias_of_once_and_status_prints_a_table(world, capsys):
    world.publish(world.image_list([world.image("a.raw")]))
    world.write_config()
    assert cli.main(["--config", str(world.config_path), "images", "sync", "--once"]) == 0
    capsys.readouterr()
    assert cli.main(["--config", str(world.config_path), "images", "status"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:4] == ["SUBSCRIPTION", "IDENTIFIER", "VERSION", "STATE"]
    assert "registered" in out
    assert cli.main(["--config", str(world.config_path), "images", "status", "--lists", "--json"]) == 0
    [listing] = json.loads(capsys.readouterr().out)
    assert listing["name"] == "fedcloud" and listing["state"] == "ok" and listing["configured"] is True


def test_shutdown_during_download_keeps_the_partial_file_for_the_next_run(world):
    import threading
    import time

    from fedcloud_site.cloud import open_backend
    from fedcloud_site.config import load_config
    from fedcloud_site.images.sync import Sync
    from fedcloud_site.log import get_logger
    from fedcloud_testing.image_server import Fault

    world.publish(world.image_list([world.image("slow.raw", size=400_000)]))
    world.server.inject("/images/slow.raw", Fault("throttle", rate=400_000))
    config = load_config(world.write_config())
    stop = threading.Event()

    def stop_mid_download():
        for _ in range(400):
            if any(p.stat().st_size > 50_000 for p in (world.tmp / "cache").rglob("*.part")):
                break
            time.sleep(0.025)
        stop.set()

    threading.Thread(target=stop_mid_download, daemon=True).start()
    Sync(config, config.section("images"), lambda: open_backend(config), get_logger("test"), stop=stop).run()
    [row] = world.status()
    assert row["state"] == "listed" and "resumes next run" in row["reason"]
    assert list((world.tmp / "cache").rglob("*.part"))
    assert world.sync() == 0
    assert world.server.requests_for("/images/slow.raw")[-1].status == 206
