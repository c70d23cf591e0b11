"""Images atrope (or vmcatcher, cloudkeeper) registered are adopted, not uploaded again (``adopt_images_from``).

The images are put into the OpenStack simulator's Glance with the properties atrope 2.0's glance dispatcher
sets (``atrope/dispatcher/glance.py``: tag ``atrope``, ``appdb_id``, ``sha512``, ``image_list``,
``vmcatcher_event_ad_mpuri``); uploads are counted at the simulator.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Dict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedcloud_site import cli
from fedcloud_site.cloud.base import Image
from fedcloud_site.images.adopt import foreign_copies, origin_of
from fedcloud_site.images.imagelist import ImageEntry
from fedcloud_site.images.register import MANAGED_BY_KEY, MANAGED_BY_VALUE


def atrope_registered(sim: Any, entry: Dict[str, Any], list_name: str = "vo.fedcloud.egi.eu",
                      sha512: str = "") -> str:
    """An image as atrope 2.0 leaves it in Glance for a list entry (shared with the VO project)."""
    image = sim.data.add_image(
        f"FEDCLOUD {entry['dc:title']}", "p-fedcloud", visibility="shared", disk_format="raw", container_format="bare",
        size=int(entry["hv:size"]), tags=["atrope"],
        properties={"appdb_id": entry["dc:identifier"], "sha512": sha512 or entry["sl:checksum:sha512"],
                    "image_list": list_name, "vmcatcher_event_ad_mpuri": entry["ad:mpuri"],
                    "vmcatcher_event_dc_description": entry["dc:description"], "architecture": "x86_64",
                    "os_distro": "ubuntu", "os_version": "22.04", "vo": "fedcloud.egi.eu"})
    return image.id


def test_atrope_images_are_adopted_and_only_the_others_uploaded(world, openstack):
    adopted_entry, changed_entry = world.image("a.raw"), world.image("b.raw")
    world.publish(world.image_list([adopted_entry, changed_entry]))
    atrope_id = atrope_registered(openstack, adopted_entry)
    stale_id = atrope_registered(openstack, changed_entry, sha512="0" * 128)  # an older version of b
    world.write_config(adopt_images_from=["atrope"])

    assert world.sync() == 0

    assert openstack.requests.get("glance.image.upload") == 1  # b only
    registered = {r["identifier"]: r["image_id"] for r in world.by_state("registered")}
    assert registered[adopted_entry["dc:identifier"]] == atrope_id
    assert registered[changed_entry["dc:identifier"]] not in (atrope_id, stale_id)
    ours = {i.id: i for i in world.cloud_images()}
    adopted = ours[atrope_id]
    assert adopted.properties[MANAGED_BY_KEY] == MANAGED_BY_VALUE
    assert adopted.properties["image_hash"] == "sha512:" + adopted_entry["sl:checksum:sha512"]
    assert adopted.properties["image_list"] == "fedcloud"
    assert stale_id not in ours  # not the listed bytes: left to the operator, never taken
    assert world.sync() == 0
    assert openstack.requests.get("glance.image.upload") == 1  # nothing uploaded again
    assert len([i for i in world.cloud().list_images() if i.properties.get("appdb_id") ==
                adopted_entry["dc:identifier"]]) == 1


def test_without_adopt_images_from_the_image_is_uploaded_again(world, openstack):
    entry = world.image("a.raw")
    world.publish(world.image_list([entry]))
    atrope_id = atrope_registered(openstack, entry)
    world.write_config()
    assert world.sync() == 0
    assert openstack.requests.get("glance.image.upload") == 1
    [row] = world.by_state("registered")
    assert row["image_id"] != atrope_id


def test_dry_run_says_it_would_adopt(world, openstack, capsys):
    entry = world.image("a.raw")
    world.publish(world.image_list([entry]))
    atrope_registered(openstack, entry)
    world.write_config(adopt_images_from=["atrope"])
    assert world.sync("--dry-run") == 0
    assert "would adopt" in capsys.readouterr().err
    assert openstack.requests.get("glance.image.upload") is None
    assert world.by_state("registered") == []


def _make_entry() -> ImageEntry:
    return ImageEntry(identifier="app-1", uri="https://lists.example.org/app-1.raw", size=10, sha512="ab" * 64,
                      version="3", title="App", mpuri="https://appdb.egi.eu/store/vm/image/app-1:3/")


def _image(props: Dict[str, str], status: str = "active") -> Image:
    return Image(id="img", name="n", status=status, properties=props,
                 created_at=datetime(2026, 1, 1, tzinfo=timezone.utc))


@pytest.mark.parametrize("props, origin", [
    ({"appdb_id": "app-1", "sha512": "ab" * 64, "image_list": "l"}, "atrope"),
    ({"appdb_id": "app-1", "image_hash": "sha512:" + "AB" * 64, "image_list": "l"}, "atrope"),  # EGI's fork
    ({"appdb_id": "app-1", "sha512": "cd" * 64, "image_list": "l"}, None),  # other bytes
    ({"appdb_id": "app-1", "sha512": "ab" * 64}, None),  # no list: not atrope's
    ({"vmcatcher_event_dc_identifier": "app-1", "vmcatcher_event_sl_checksum_sha512": "ab" * 64}, "vmcatcher"),
    ({"CLOUDKEEPER_mpuri": "https://appdb.egi.eu/store/vm/image/app-1:3/", "CLOUDKEEPER_version": "3"},
     "cloudkeeper"),
    ({"CLOUDKEEPER_mpuri": "https://appdb.egi.eu/store/vm/image/app-1:3/", "CLOUDKEEPER_version": "2"}, None),
    ({"CLOUDKEEPER_APPLIANCE_ID": "app-1", "CLOUDKEEPER_APPLIANCE_VERSION": "3"}, "cloudkeeper"),
    ({"appdb_id": "app-1", "image_hash": "sha512:" + "ab" * 64, "image_list": "l",
      MANAGED_BY_KEY: MANAGED_BY_VALUE}, None),  # already ours
])
def test_origins_are_recognised_by_entry_and_bytes(props, origin):
    assert origin_of(_image(props), _make_entry()) == origin


def test_only_active_images_of_the_wanted_tools_are_taken():
    props = {"appdb_id": "app-1", "sha512": "ab" * 64, "image_list": "l"}
    entry = _make_entry()
    assert foreign_copies([_image(props, status="deactivated")], entry, ["atrope"]) == []
    assert foreign_copies([_image(props)], entry, ["cloudkeeper"]) == []
    assert [o for _, o in foreign_copies([_image(props)], entry, ["atrope"])] == ["atrope"]


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["appdb_id", "sha512", "image_hash", "image_list", "CLOUDKEEPER_mpuri",
                                        "CLOUDKEEPER_version", "CLOUDKEEPER_APPLIANCE_ID", MANAGED_BY_KEY,
                                        "vmcatcher_event_dc_identifier", "vmcatcher_event_sl_checksum_sha512"])
                       | st.text(max_size=8), st.text(max_size=140) | st.sampled_from(["app-1", "ab" * 64, "3"])))
def test_any_properties_are_judged_without_error_and_never_adopt_without_identity(props):
    origin = origin_of(_image(props), _make_entry())
    if origin is not None:
        assert "app-1" in props.values() or "https://appdb.egi.eu/store/vm/image/app-1:3/" in props.values()
        assert props.get(MANAGED_BY_KEY) != MANAGED_BY_VALUE


def test_after_fedcloud_site_migrate_from_atrope_its_images_are_adopted(world, openstack, tmp_path):
    """atrope's sources file (its sample's format) -> ``fedcloud-site migrate`` -> ``images once``: the image
    atrope registered is kept, the new version of another one is uploaded."""
    kept, new = world.image("kept.raw"), world.image("new.raw")
    world.publish(world.image_list([kept, new]))
    atrope_id = atrope_registered(openstack, kept, list_name="fedcloud vo")
    sources = tmp_path / "sources.yaml"
    sources.write_text(f"""fedcloud vo:
    url: {world.server.url + world.list_path}
    enabled: true
    endorser:
        dn: '{world.pki.endorser.dn}'
        ca: "{world.pki.endorser.issuer_dn}"
    token: 17580f07-1e33-4a38-94e3-3386daced5be
    images: []
    prefix: "FEDCLOUD "
    project: p-fedcloud
""", encoding="utf-8")
    world.write_config(subscriptions=[])  # the site as before: no subscription of ours yet
    assert cli.main(["--config", str(world.config_path), "migrate", "--from", f"atrope={sources}"]) == 0
    assert cli.main(["--config", str(world.config_path), "images", "once"]) == 0
    assert openstack.requests.get("glance.image.upload") == 1  # new.raw only
    ours = {i.id: i for i in world.cloud_images()}
    assert ours[atrope_id].properties["image_list"] == "fedcloud-vo"
    assert ours[atrope_id].name == f"FEDCLOUD {kept['dc:title']}"
