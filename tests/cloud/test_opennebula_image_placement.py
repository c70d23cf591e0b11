"""The opennebula backend's image placement (datastores, names oned accepts) and VM templates, through pyone
against the OpenNebula XML-RPC simulator."""

from __future__ import annotations

import io
from typing import Iterator

import pytest
from one_settings import backend_settings

from fedcloud_site.cloud.base import CloudBackend, CloudError, ImageSpec, NotSupported, TemplateSpec
from fedcloud_site.cloud.opennebula import OpenNebulaBackend
from fedcloud_site.cloud.static import StaticBackend, StaticSettings
from fedcloud_testing.opennebula import OneFault, OpenNebulaSimulator, generate
from fedcloud_testing.opennebula.model import SimDatastore
from fedcloud_testing.opennebula.server import ACTION, INVALID_NAME_CHARS

VO_DATASTORE = 100


@pytest.fixture
def sim() -> Iterator[OpenNebulaSimulator]:
    cloud = generate(n_vms=5, seed=7, now=1_800_000_000)
    cloud.datastores[VO_DATASTORE] = SimDatastore(VO_DATASTORE, "vo-images", 0, base_path="/srv/one/100")
    with OpenNebulaSimulator(cloud) as server:
        yield server


@pytest.fixture
def cloud(sim, tmp_path) -> OpenNebulaBackend:
    return OpenNebulaBackend(backend_settings(sim, upload_dir=tmp_path / "upload"))


def upload(cloud: OpenNebulaBackend, name: str = "EGI Ubuntu", **spec) -> str:
    spec.setdefault("owner", "102")
    spec.setdefault("visibility", "shared")
    return cloud.create_image(ImageSpec(name=name, disk_format="raw", **spec), io.BytesIO(b"x" * 4096)).id


# -- datastores -------------------------------------------------------------------------------------------------
def test_an_image_goes_to_the_datastore_its_spec_names_else_the_configured_one(cloud, sim):
    chosen = upload(cloud, "in the VO datastore", datastore=str(VO_DATASTORE))
    default = upload(cloud, "in the default datastore")
    assert sim.cloud.images[int(chosen)].datastore_id == VO_DATASTORE
    assert sim.cloud.images[int(default)].datastore_id == cloud.settings.datastore_id == 1


def test_a_datastore_oned_cannot_take_images_into_or_that_is_no_id_is_refused(cloud, sim, tmp_path):
    with pytest.raises(CloudError, match="SYSTEM or FILE datastore"):
        upload(cloud, "system", datastore="0")
    with pytest.raises(CloudError, match="datastores are given by id, got 'vo-images'"):
        upload(cloud, "by name", datastore="vo-images")
    assert list((tmp_path / "upload").iterdir()) == []
    assert {i.name for i in sim.cloud.images.values()}.isdisjoint({"system", "by name"})


# -- names ---------------------------------------------------------------------------------------------------------
def test_image_names_are_made_acceptable_to_oned_and_unique_with_the_distinguishing_tag(cloud):
    name = cloud.image_name("Image for EGI Ubuntu 22.04 [Ubuntu/22.04/KVM]: {test} $HOME", "fedcloud 2024.01 5c86e1b2")
    assert not set(name) & set(INVALID_NAME_CHARS)
    assert name == "Image for EGI Ubuntu 22.04 [Ubuntu-22.04-KVM]- -test- -HOME [fedcloud 2024.01 5c86e1b2]"
    long = cloud.image_name("T" * 300, "sub 1 abcdef01")
    assert len(long) == 128 and long.endswith(" [sub 1 abcdef01]")
    assert cloud.image_name("plain") == "plain"


def test_two_versions_with_one_title_coexist_and_renames_stay_valid(cloud, sim):
    first = upload(cloud, cloud.image_name("EGI CentOS/7", "fedcloud 1 aaaa"))
    second = upload(cloud, cloud.image_name("EGI CentOS/7", "fedcloud 2 bbbb"))
    assert first != second
    renamed = cloud.update_image(first, {}, name="EGI CentOS: retired")
    assert renamed.name == "EGI CentOS- retired" == sim.cloud.images[int(first)].name


def test_backends_without_name_rules_keep_names_as_given(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("projects: []\n", encoding="utf-8")
    static = StaticBackend(StaticSettings(site_file=site))
    assert static.image_name("EGI Ubuntu/22.04", "tag") == CloudBackend.image_name(static, "EGI Ubuntu/22.04")
    assert static.image_name("EGI Ubuntu/22.04", "tag") == "EGI Ubuntu/22.04"


# -- VM templates -----------------------------------------------------------------------------------------------
def template_spec(image_id: str, **overrides) -> TemplateSpec:
    values = dict(name="EGI Ubuntu", image_id=image_id, ram_mb=2048, vcpus=2, cpu=1.0, arch="x86_64", owner="102",
                  visibility="shared", properties={"fedcloud_site_managed_by": "images", "appdb_id": "app-1"},
                  attributes={"CONTEXT": {"NETWORK": "YES", "SSH_PUBLIC_KEY": "$USER[SSH_PUBLIC_KEY]"},
                              "HYPERVISOR": "kvm"})
    values.update(overrides)
    return TemplateSpec(**values)  # type: ignore[arg-type]


def test_a_template_boots_the_image_with_its_size_arch_and_origin_owned_and_shared_like_it(cloud, sim):
    image_id = upload(cloud)
    template = cloud.create_template(template_spec(image_id))
    raw = sim.cloud.templates[int(template.id)]
    assert raw.gid == 102 and raw.permissions[3] == 1 and raw.permissions[6] == 0  # GROUP_U, not OTHER_U
    assert raw.template["MEMORY"] == "2048" and raw.template["VCPU"] == "2" and raw.template["CPU"] == "1"
    assert raw.template["OS"] == {"ARCH": "x86_64"} and raw.template["DISK"] == {"IMAGE_ID": image_id}
    assert raw.template["CONTEXT"] == {"NETWORK": "YES", "SSH_PUBLIC_KEY": "$USER[SSH_PUBLIC_KEY]"}
    assert raw.template["FEDCLOUD_SITE_MANAGED_BY"] == "images" and raw.template["APPDB_ID"] == "app-1"
    assert (template.image_ids, template.owner, template.visibility, template.ram_mb, template.vcpus) == \
        ((image_id,), "102", "shared", 2048, 2)
    assert template.properties["HYPERVISOR"] == "kvm"
    listed = {t.id: t for t in cloud.list_templates()}
    assert listed[template.id] == template
    flavor = next(f for f in cloud.list_flavors() if f.id == template.id)  # still readable as a flavour
    assert (flavor.ram_mb, flavor.vcpus) == (2048, 2)


def test_deleting_a_template_leaves_its_image(cloud, sim):
    image_id = upload(cloud)
    template = cloud.create_template(template_spec(image_id, name="EGI Ubuntu/22.04"))
    assert template.name == "EGI Ubuntu-22.04"
    cloud.delete_template(template.id)
    assert int(template.id) not in sim.cloud.templates and int(image_id) in sim.cloud.images


def test_a_template_oned_refuses_to_share_is_not_left_behind(cloud, sim):
    image_id = upload(cloud)
    before = set(sim.cloud.templates)
    sim.inject(OneFault("error", method="one.template.chmod", code=ACTION, message="not allowed"))
    with pytest.raises(CloudError, match="not allowed"):
        cloud.create_template(template_spec(image_id))
    assert set(sim.cloud.templates) == before


def test_backends_without_templates_say_so(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("projects: []\n", encoding="utf-8")
    static = StaticBackend(StaticSettings(site_file=site))
    with pytest.raises(NotSupported, match="VM templates"):
        static.create_template(template_spec("1"))
    with pytest.raises(NotSupported):
        list(static.list_templates())
    with pytest.raises(NotSupported):
        static.delete_template("1")
