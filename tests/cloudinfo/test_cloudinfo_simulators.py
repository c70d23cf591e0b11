"""The same site read through the OpenStack and OpenNebula simulators (real openstacksdk / pyone clients)
publishes the same entries as through the static backend; an unreachable cloud keeps the last good cache.

What legitimately differs is normalised, and only that: the hypervisor's used vCPUs/RAM and running VMs
(each cloud counts them its own way), and for OpenNebula its own numeric IDs (translated through the
simulator's ID map) and what OpenNebula cannot express (project domains, ephemeral disks, image members).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple

import yaml
from cloudinfo_helpers import SITE_FILE, build, json_of, ldif_of, write_site_config

from fedcloud_site.cloudinfo.cache import read_status
from fedcloud_site.config import load_config
from fedcloud_site.errors import FedcloudSiteError
from fedcloud_site.runner import Runner
from fedcloud_testing.opennebula import OpenNebulaSimulator, from_static
from fedcloud_testing.openstack import OpenStackSim, from_site

#: the hypervisor as the site wants it published (Nova calls KVM "QEMU"), set for every backend alike
MANAGER = "  manager:\n    hypervisor: KVM\n    hypervisor_version: '8.2'\n"
USAGE_KEYS = ("UsedCPUs=", "UsedRAM=", "RunningVM=")


def without_manager_usage(ldif: str) -> str:
    """The LDIF without the manager's used vCPUs/RAM and running VMs (unfolded)."""
    entries = []
    for block in ldif.replace("\n ", "").split("\n\n"):
        if block.startswith("dn: GLUE2ManagerID="):
            block = "\n".join(line for line in block.split("\n")
                              if not line.startswith(tuple(f"GLUE2EntityOtherInfo: {k}" for k in USAGE_KEYS)))
        entries.append(block)
    return "\n\n".join(entries)


def openstack_settings(sim: OpenStackSim) -> str:
    auth = dict(sim.auth, retries=0, timeout=10)
    return "\n".join(f"    {key}: {value}" for key, value in auth.items())


def render_both(config_path: Path) -> Tuple[str, Dict[str, Any]]:
    model = build(load_config(config_path))
    return without_manager_usage(ldif_of(model)), json_of(model)


def test_the_openstack_simulator_gives_the_same_entries_as_the_static_backend(tmp_path):
    static = render_both(write_site_config(tmp_path / "static", cloudinfo_extra=MANAGER))
    with OpenStackSim(from_site(SITE_FILE)) as sim:
        through_api = render_both(write_site_config(tmp_path / "openstack", backend="openstack",
                                                    backend_settings=openstack_settings(sim),
                                                    cloudinfo_extra=MANAGER))
    assert through_api[0] == static[0]
    assert through_api[1] == static[1]


def opennebula_site(tmp_path: Path) -> Path:
    """The test site as OpenNebula can hold it: no project domains, ephemeral disks or image members, and a
    private flavour says its one project (a template usable by its group; oned has no "not told")."""
    data = yaml.safe_load(SITE_FILE.read_text())
    for project in data["projects"]:
        project.pop("domain", None)
    fedcloud = next(p["id"] for p in data["projects"] if p["name"] == "fedcloud")
    for flavor in data["flavors"]:
        flavor.pop("ephemeral", None)
        if flavor.get("public") is False:
            flavor["projects"] = [fedcloud]
    for image in data["images"]:
        image.pop("members", None)
    path = tmp_path / "one-site.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def translate(text: str, id_map: Mapping[str, Mapping[str, int]]) -> str:
    """Static IDs of projects and images replaced by the simulator's OpenNebula IDs."""
    for kind in ("group", "image"):
        for static_id, one_id in id_map.get(kind, {}).items():
            if len(static_id) >= 32:  # the UUID/hex IDs (names map too, but are not IDs)
                text = text.replace(static_id, str(one_id))
    return text


def test_the_opennebula_simulator_gives_the_same_entries_as_the_static_backend(tmp_path):
    site = opennebula_site(tmp_path)
    extra = MANAGER.replace("  manager:", "  middleware: opennebula\n  manager:")

    def config(path: Path, **kwargs: Any) -> Path:
        written = write_site_config(path, site_file=site, cloudinfo_extra=extra, **kwargs)
        written.write_text(written.read_text().replace("  middleware: openstack\n", ""))
        return written

    static_ldif, static_json = render_both(config(tmp_path / "static"))
    cloud = from_static(site)
    with OpenNebulaSimulator(cloud) as sim:
        admin = next(u for u in sim.cloud.users.values() if 0 in u.groups)
        settings = (f"    endpoint: {sim.url}\n    username: {admin.name}\n    password: {admin.password}\n"
                    "    vo_attribute: EGI_VO")
        one_ldif, one_json = render_both(config(tmp_path / "one", backend="opennebula", backend_settings=settings))
    assert one_ldif == translate(static_ldif, cloud.id_map)
    assert one_json == json.loads(translate(json.dumps(static_json), cloud.id_map))
    assert "GLUE2EndpointInterfaceName: org.opennebula.compute" in one_ldif


def test_an_unreachable_cloud_keeps_the_last_good_cache_and_records_the_error(tmp_path):
    with OpenStackSim(from_site(SITE_FILE)) as sim:
        config_path = write_site_config(tmp_path, backend="openstack", backend_settings=openstack_settings(sim))
        assert Runner("cloudinfo", config_path).run_once() == 0
    cache = tmp_path / "cache"
    good_ldif, good_json = (cache / "cloudinfo.ldif").read_bytes(), (cache / "cloudinfo.json").read_bytes()
    good_status = read_status(cache)
    # the simulator is gone: its port refuses connections
    assert Runner("cloudinfo", config_path).run_once() == FedcloudSiteError.exit_status
    assert (cache / "cloudinfo.ldif").read_bytes() == good_ldif
    assert (cache / "cloudinfo.json").read_bytes() == good_json
    status = read_status(cache)
    assert status["last_success"] == good_status["last_success"]
    assert status["last_error"].startswith("CloudUnavailable")
