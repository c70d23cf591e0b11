"""OpenNebula specifics of the subscriber, through pyone against the simulator: VM templates beside the
images (``opennebula_template``), the per-subscription datastore, and names oned accepts."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest

from fedcloud_site.config import load_config
from fedcloud_site.errors import ConfigError
from fedcloud_testing.opennebula.model import SimDatastore, SimTemplate

VO_DATASTORE = 100


def group_id(sim: Any, name: str = "fedcloud") -> int:
    return next(g.id for g in sim.cloud.groups.values() if g.name == name)


def our_templates(sim: Any) -> List[SimTemplate]:
    return [t for t in sim.cloud.templates.values() if t.template.get("FEDCLOUD_SITE_MANAGED_BY") == "images"]


def by_image(sim: Any) -> Dict[str, SimTemplate]:
    return {t.template["DISK"]["IMAGE_ID"]: t for t in our_templates(sim)}


def test_a_new_version_is_registered_beside_the_old_one_then_replaces_it(world, opennebula):
    world.publish(world.image_list([world.image("v1.raw", identifier="app", seed=1, title="EGI Ubuntu/22.04")]))
    assert world.sync() == 0
    [old] = world.by_state("registered")
    world.publish(world.image_list([world.image("v2.raw", identifier="app", seed=2, title="EGI Ubuntu/22.04",
                                                **{"hv:version": "2"})], version="20250101000000"))
    assert world.sync() == 0  # oned wants unique names per owner: the versions are told apart
    [current] = world.by_state("registered")
    assert current["version"] == "2" and current["image_id"] != old["image_id"]
    names = {i.name for i in world.cloud_images()}
    assert all(n.startswith("EGI Ubuntu-22.04 [fedcloud ") for n in names) and len(names) == 1
    assert world.sync() == 0 and world.by_state("registered")[0]["image_id"] == current["image_id"]


def test_each_image_gets_a_template_in_the_vo_group_sized_by_its_list_entry(world, opennebula):
    entry = world.image("a.raw", **{"hv:core_minimum": "2", "hv:ram_minimum": "2048"})
    world.publish(world.image_list([entry]))
    world.write_config(opennebula_template=True, template={"cpu": 0.5, "vectors": {"NIC": {"NETWORK": "public"}}})
    assert world.sync() == 0
    [row] = world.by_state("registered")
    [template] = our_templates(opennebula)
    image = opennebula.cloud.images[int(row["image_id"])]
    t = template.template
    assert (t["MEMORY"], t["VCPU"], t["CPU"], t["OS"], t["DISK"]) == \
        ("2048", "2", "1", {"ARCH": "x86_64"}, {"IMAGE_ID": row["image_id"]})
    assert t["NIC"] == {"NETWORK": "public"} and t["CONTEXT"]["SSH_PUBLIC_KEY"] == "$USER[SSH_PUBLIC_KEY]"
    assert t["APPDB_ID"] == entry["dc:identifier"] and t["VMCATCHER_EVENT_AD_MPURI"] == entry["ad:mpuri"]
    assert t["IMAGE_LIST"] == "fedcloud" and t["FEDCLOUD_SITE_TEMPLATE"]
    assert template.gid == image.gid == group_id(opennebula) and template.name == image.name
    assert template.permissions[3] == image.permissions[3] == 1  # GROUP_U like the image
    assert world.sync() == 0
    assert [t.id for t in our_templates(opennebula)] == [template.id]  # idempotent


def test_templates_follow_their_images_through_new_versions_and_retirement(world, opennebula):
    world.write_config(opennebula_template=True, grace_period="1h")
    world.publish(world.image_list([world.image("v1.raw", identifier="app", seed=1)]))
    assert world.sync() == 0
    [v1] = world.by_state("registered")
    world.publish(world.image_list([world.image("v2.raw", identifier="app", seed=2, **{"hv:version": "2"})],
                                   version="20250101000000"))
    assert world.sync() == 0
    [v2] = world.by_state("registered")
    assert set(by_image(opennebula)) == {v2["image_id"]}  # the old version's template went with its deprecation
    assert int(v1["image_id"]) in opennebula.cloud.images  # ... its image stays for the grace period
    world.publish(world.image_list([], version="20260101000000"))
    assert world.sync() == 0
    assert our_templates(opennebula) == [] and int(v2["image_id"]) in opennebula.cloud.images


def test_memory_and_vcpus_default_to_the_template_settings_and_a_change_replaces_the_template(world, opennebula):
    entry = world.image("a.raw")
    del entry["hv:ram_minimum"]
    world.publish(world.image_list([entry]))
    world.write_config(opennebula_template=True, template={"memory": 4096, "vcpus": 3, "context": False})
    assert world.sync() == 0
    [first] = our_templates(opennebula)
    assert (first.template["MEMORY"], first.template["VCPU"], first.template["CPU"]) == ("4096", "3", "3")
    assert "CONTEXT" not in first.template
    world.write_config(template={"memory": 1024})
    assert world.sync() == 0
    [second] = our_templates(opennebula)
    assert second.id != first.id and second.template["MEMORY"] == "1024"


def test_a_template_deleted_by_hand_comes_back_and_switching_templates_off_removes_ours(world, opennebula):
    world.publish(world.image_list([world.image("a.raw")]))
    world.write_config(opennebula_template=True)
    assert world.sync() == 0
    [made] = our_templates(opennebula)
    opennebula.cloud.templates[999] = SimTemplate(999, 0, 0, "site's own", 0, {"MEMORY": "1"})
    del opennebula.cloud.templates[made.id]
    assert world.sync() == 0
    [again] = our_templates(opennebula)
    world.subscription["opennebula_template"] = False  # the subscription overrides the section
    world.write_config()
    assert world.sync() == 0
    assert our_templates(opennebula) == [] and 999 in opennebula.cloud.templates  # never others' templates
    assert again.id not in opennebula.cloud.templates and world.by_state("registered")


def test_a_template_the_cloud_refuses_is_retried_next_run_without_failing_the_image(world, opennebula):
    from fedcloud_testing.opennebula import OneFault
    from fedcloud_testing.opennebula.server import ACTION

    world.publish(world.image_list([world.image("a.raw")]))
    world.write_config(opennebula_template=True)
    opennebula.inject(OneFault("error", method="one.template.allocate", code=ACTION, message="quota exceeded"))
    assert world.sync() == 1
    assert world.by_state("registered") and our_templates(opennebula) == []
    opennebula.clear_faults()
    assert world.sync() == 0
    assert len(our_templates(opennebula)) == 1


def test_a_subscription_can_put_its_images_in_its_own_datastore(world, opennebula):
    opennebula.cloud.datastores[VO_DATASTORE] = SimDatastore(VO_DATASTORE, "fedcloud-images", 0)
    world.publish(world.image_list([world.image("a.raw"), world.image("b.raw")]))
    world.subscription["datastore_id"] = VO_DATASTORE
    world.write_config()
    assert world.sync() == 0
    rows = world.by_state("registered")
    assert len(rows) == 2
    assert {opennebula.cloud.images[int(r["image_id"])].datastore_id for r in rows} == {VO_DATASTORE}


def test_a_missing_datastore_fails_the_images_with_oneds_reason(world, opennebula):
    world.publish(world.image_list([world.image("a.raw")]))
    world.subscription["datastore_id"] = 55
    world.write_config()
    assert world.sync() == 1
    [row] = world.by_state("failed")
    assert "datastore [55]" in row["reason"]


@pytest.mark.parametrize("key, value", [("datastore_id", 100), ("opennebula_template", True)])
def test_opennebula_only_keys_are_refused_on_other_backends(world, key, value):
    world.subscription[key] = value
    path = world.write_config()
    with pytest.raises(ConfigError, match=rf"subscriptions\[0\]\.{key}: the static backend has no"):
        load_config(path)
    world.subscription.pop(key)
    with pytest.raises(ConfigError, match="opennebula_template: the static backend has no VM templates"):
        load_config(world.write_config(opennebula_template=True))
