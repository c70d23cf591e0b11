"""OpenNebula template permissions decide the shares a flavour is published in (through pyone and the
OpenNebula simulator): a template used by others is in every share, one used by its group only is in that
group's share only, and an owner-only template is in none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterator, Tuple

import pyone
import pytest
import yaml
from cloudinfo_helpers import SITE_FILE, build, json_of, ldif_of, write_site_config

from fedcloud_site.cloudinfo.model import SiteModel
from fedcloud_site.config import load_config
from fedcloud_testing.opennebula import OpenNebulaSimulator, from_static


def one_site(tmp_path: Path) -> Path:
    """The test site without what OpenNebula cannot hold (project domains, ephemeral disks, image members)."""
    data = yaml.safe_load(SITE_FILE.read_text())
    for project in data["projects"]:
        project.pop("domain", None)
    for flavor in data["flavors"]:
        flavor.pop("ephemeral", None)
    data["flavors"] = [f for f in data["flavors"] if f.get("public", True)]  # the private ones come from pyone
    for image in data["images"]:
        image.pop("members", None)
    path = tmp_path / "one-site.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def add_template(one: Any, name: str, group: int, group_u: int) -> str:
    """A template owned by ``group``, usable by its group (``group_u``) or by its owner only, never by others."""
    oid = one.template.allocate(f'NAME="{name}"\nCPU="8"\nVCPU="8"\nMEMORY="65536"')
    one.template.chown(oid, -1, group)
    one.template.chmod(oid, 1, 1, 0, group_u, 0, 0, 0, 0, 0)
    return str(oid)


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Iterator[Tuple[SiteModel, Dict[str, str]]]:
    """The site's model with a template private to biomed-cloud's group and an owner-only one."""
    tmp_path = tmp_path_factory.mktemp("one-private")
    cloud = from_static(one_site(tmp_path))
    groups = cloud.id_map["group"]
    with OpenNebulaSimulator(cloud) as sim:
        admin = next(u for u in sim.cloud.users.values() if 0 in u.groups)
        one = pyone.OneServer(sim.url, session=f"{admin.name}:{admin.password}")
        ids = {"biomed-gpu": add_template(one, "biomed-gpu", groups["biomed-cloud"], 1),
               "closed": add_template(one, "closed", groups["biomed-cloud"], 0)}
        settings = (f"    endpoint: {sim.url}\n    username: {admin.name}\n    password: {admin.password}\n"
                    "    vo_attribute: EGI_VO")
        config = write_site_config(tmp_path, backend="opennebula", backend_settings=settings,
                                   cloudinfo_extra="  middleware: opennebula\n")
        config.write_text(config.read_text().replace("  middleware: openstack\n", ""))
        model = build(load_config(config))
    ids.update({"biomed": str(groups["biomed-cloud"]), "fedcloud": str(groups["fedcloud"])})
    yield model, ids


def share_of(model: SiteModel, project_id: str) -> Any:
    return next(s for s in model.shares if s.project_id == project_id)


def test_a_group_only_template_is_offered_in_its_groups_share_only(published):
    model, ids = published
    names = {s.project_id: {t.name for t in model.instance_types_of(s)} for s in model.shares}
    assert set(names) == {ids["biomed"], ids["fedcloud"]}
    assert "biomed-gpu" in names[ids["biomed"]]
    assert "biomed-gpu" not in names[ids["fedcloud"]]
    assert {"m1.small", "m1.large"} <= names[ids["biomed"]] & names[ids["fedcloud"]]  # public: every share


def test_an_owner_only_template_is_not_published(published):
    model, _ = published
    assert "closed" not in {t.name for t in model.instance_types}


def test_the_json_and_ldif_link_a_group_only_template_to_its_groups_share_only(published):
    model, ids = published
    biomed, fedcloud = share_of(model, ids["biomed"]), share_of(model, ids["fedcloud"])
    types = {t["Name"]: t for t in json_of(model)["CloudComputingInstanceType"]}
    assert types["biomed-gpu"]["Associations"]["Share"] == [biomed.id]
    assert set(types["m1.small"]["Associations"]["Share"]) == {biomed.id, fedcloud.id}
    gpu = next(t for t in model.instance_types if t.name == "biomed-gpu")
    shares = {}
    for block in ldif_of(model).replace("\n ", "").split("\n\n"):
        if block.startswith("dn: GLUE2ShareID="):
            share_id = block.split(",", 1)[0].split("=", 1)[1]
            shares[share_id] = block
    assert f"GLUE2ComputingShareExecutionEnvironmentForeignKey: {gpu.ldif_id}" in shares[biomed.id]
    assert f"GLUE2ComputingShareExecutionEnvironmentForeignKey: {gpu.ldif_id}" not in shares[fedcloud.id]
