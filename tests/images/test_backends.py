"""Registration through the real cloud clients: Glance via the OpenStack simulator (openstacksdk session),
OpenNebula via the XML-RPC simulator (pyone)."""

from __future__ import annotations

from fedcloud_testing.openstack import ADMIN_USER


def test_glance_registration_carries_origin_properties_and_goes_to_the_vo_project(world, openstack):
    entry = world.image("a.raw")
    world.publish(world.image_list([entry]))
    assert world.sync() == 0
    [image] = world.cloud_images()
    assert image.status == "active" and image.size == 300_000 and image.disk_format == "raw"
    assert image.owner == "p-fedcloud" and image.visibility == "shared"
    assert image.properties["vmcatcher_event_ad_mpuri"] == entry["ad:mpuri"]
    assert image.properties["appdb_id"] == entry["dc:identifier"]
    assert image.properties["image_hash"] == "sha512:" + entry["sl:checksum:sha512"]
    assert image.properties["os_distro"] == "ubuntu"
    assert openstack.requests.get("glance.image.upload") == 1
    assert world.sync() == 0
    assert openstack.requests.get("glance.image.upload") == 1


def test_glance_new_version_replaces_old_and_in_use_image_is_only_deactivated(world, openstack):
    world.publish(world.image_list([world.image("v1.raw", identifier="app", seed=1),
                                    world.image("other.raw", identifier="other")]))
    assert world.sync() == 0
    old = {r["identifier"]: r["image_id"] for r in world.by_state("registered")}
    admin = openstack.data.find_user(ADMIN_USER)
    openstack.data.boot_server("p-fedcloud", admin.id, "m1", image_id=old["other"])
    world.publish(world.image_list([world.image("v2.raw", identifier="app", seed=2, **{"hv:version": "2"})],
                                   version="20250101000000"))
    assert world.sync() == 0
    images = {i.id: i for i in world.cloud_images()}
    assert old["app"] not in images
    assert images[old["other"]].status == "deactivated"
    [current] = [i for i in images.values() if i.properties["appdb_id"] == "app"]
    assert current.properties["vmcatcher_event_hv_version"] == "2" and current.status == "active"
    assert "in use by VMs" in world.by_state("deprecated")[0]["reason"]


def test_opennebula_registration_as_image_in_the_vo_group(world, opennebula):
    entry = world.image("a.raw")
    world.publish(world.image_list([entry]))
    assert world.sync() == 0
    [image] = world.cloud_images()
    group = next(g for g in opennebula.cloud.groups.values() if g.name == "fedcloud")
    assert image.owner == str(group.id) and image.visibility == "shared"
    assert image.properties["VMCATCHER_EVENT_AD_MPURI"] == entry["ad:mpuri"]
    assert image.properties["APPDB_ID"] == entry["dc:identifier"]
    assert image.disk_format == "raw"
    assert world.sync() == 0
    assert len(world.cloud_images()) == 1


def test_opennebula_retirement_disables_then_deletes(world, opennebula):
    world.publish(world.image_list([world.image("a.raw")]))
    assert world.sync() == 0
    world.publish(world.image_list([], version="20250101000000"))
    world.write_config(grace_period="1h")
    assert world.sync() == 0
    [row] = world.by_state("deprecated")
    assert world.cloud().get_image(row["image_id"]).status in ("disabled", "deactivated")
    world.write_config(grace_period=0)
    assert world.sync() == 0
    assert world.cloud_images() == [] and world.by_state("removed")
