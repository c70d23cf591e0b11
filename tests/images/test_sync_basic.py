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
