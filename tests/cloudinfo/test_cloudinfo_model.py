"""The site model: what the provider publishes, read from the backend and completed by the configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog
import yaml
from cloudinfo_helpers import ENDPOINT, SITE_FILE, build, json_of, ldif_of, write_site_config

from fedcloud_site.cloudinfo.model import ModelError
from fedcloud_site.config import load_config

P_FED = "0a1b2c3d4e5f40718293a4b5c6d7e8f9"
P_BIO = "1b2c3d4e5f60418293a4b5c6d7e8f90a"
P_ADMIN = "2c3d4e5f6071429384a5b6c7d8e9f0a1"
EPT = f"{ENDPOINT}_OpenStack_v3"
SHARE_FED = f"{EPT}_share_fedcloud.egi.eu_{P_FED}"
SHARE_BIO = f"{EPT}_share_biomed_{P_BIO}"
IMG_PUBLIC = "6f0c3e1a-5b2d-4c8e-9f7a-1d3b5c7e9a0b"
IMG_SHARED = "7a1d4f2b-6c3e-4d9f-8a0b-2e4c6d8f0a1c"
IMG_NO_OS = "8b2e5a3c-7d4f-4e0a-9b1c-3f5d7e9a1b2d"
IMG_LOCAL = "9c3f6b4d-8e5a-4f1b-8c2d-4a6e8f0b2c3e"


def variant_site(tmp_path: Path, change) -> Path:
    """A copy of the test site, changed by ``change(data)``."""
    data = yaml.safe_load(SITE_FILE.read_text())
    change(data)
    path = tmp_path / "variant-site.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_each_project_a_vo_maps_becomes_one_share_and_unmapped_projects_are_logged(site_config):
    with structlog.testing.capture_logs() as logs:
        model = build(site_config)
    assert [(s.id, s.vo, s.project_id) for s in model.shares] == [
        (SHARE_BIO, "biomed", P_BIO),  # mapped by vos.biomed.projects (project name)
        (SHARE_FED, "fedcloud.egi.eu", P_FED),  # mapped by the project property egi.VO
    ]
    unmapped = [e for e in logs if e["event"].startswith("project has no VO mapping")]
    assert [(e["project"], e["project_name"]) for e in unmapped] == [(P_ADMIN, "admin")]
    assert model.access_policy.rules == ("VO:biomed", "VO:fedcloud.egi.eu")
    assert [s.policy_id for s in model.shares] == [f"{SHARE_BIO}_Policy", f"{SHARE_FED}_Policy"]


def test_vm_counts_quotas_and_vo_settings_reach_the_shares(site_config):
    model = build(site_config)
    bio, fed = model.shares
    assert (fed.vms.total, fed.vms.running, fed.vms.suspended, fed.vms.halted) == (2, 1, 0, 1)
    assert (bio.vms.total, bio.vms.running, bio.vms.suspended, bio.vms.halted) == (2, 1, 1, 0)  # deleted VM not counted
    svc = model.service.vms
    assert (svc.total, svc.running, svc.suspended, svc.halted) == (4, 2, 1, 1)  # the admin project's VM is not ours
    assert fed.max_vm == 50 and dict(fed.quotas) == {"instances": 50, "cores": 200, "ram": 409600}
    assert bio.sla == "https://egi.eu/sla/biomed"
    assert (fed.default_network_type, fed.public_network_name) == ("private", "public")
    assert (fed.instance_max_cpu, fed.instance_max_ram) == (8, 65536)
    assert model.service.other_info == {"gocdb_id": "1234G0", "site_name": "TEST-SITE"}


def test_flavours_become_instance_types_with_gpu_and_benchmark(site_config):
    model = build(site_config)
    assert [(t.id, t.name, t.cpu, t.ram_mb, t.disk_gb) for t in model.instance_types] == [
        ("1", "m1.small", 1, 2048, 20), ("2", "m1.large", 4, 8192, 80), ("3", "g1.a100", 8, 65536, 100)]
    gpu = model.instance_types[2].accelerator
    assert (gpu.id, gpu.name, gpu.type, gpu.number, gpu.vendor, gpu.model) == (
        "3_gpu", "g1.a100_gpu", "GPU", 2, "NVIDIA", "A100")
    large = model.instance_types[1]
    assert (large.benchmark_type, large.benchmark_value, large.ephemeral_gb) == ("HEPSPEC06", 10.5, 20)
    manager = model.manager
    assert (manager.instance_min_cpu, manager.instance_max_cpu, manager.instance_min_ram,
            manager.instance_max_ram) == (1, 8, 2048, 65536)
    assert (manager.hypervisor_name, manager.total_cpus, manager.total_ram_mb) == ("KVM", 256, 1048576)


def test_only_public_or_private_flavours_when_configured(tmp_path):
    public = build(load_config(write_site_config(tmp_path, cloudinfo_extra="  flavors: public")))
    assert [t.id for t in public.instance_types] == ["1", "2"]
    private = build(load_config(write_site_config(tmp_path, cloudinfo_extra="  flavors: private")))
    assert [t.id for t in private.instance_types] == ["3"]


def test_a_flavour_without_ram_is_logged_by_name_and_the_others_are_published(tmp_path):
    def change(data):
        del data["flavors"][0]["ram"]  # the backend cannot read this record at all
        data["flavors"].append({"id": "4", "name": "broken.zero", "vcpus": 2, "ram": 0})

    config = load_config(write_site_config(tmp_path, site_file=variant_site(tmp_path, change)))
    with structlog.testing.capture_logs() as logs:
        model = build(config)
    assert [t.id for t in model.instance_types] == ["2", "3"]
    messages = [e["event"] for e in logs if e["log_level"] in ("warning", "error")]
    assert any("flavors[0] (1): missing ram" in m for m in messages), messages
    assert any("flavour 4 (broken.zero) has no RAM" in m for m in messages), messages
    assert len([p for p in model.problems if "flavo" in p]) == 2  # each reported once
    assert "dn: GLUE2ResourceID=2_" in ldif_of(model)


def test_images_are_linked_to_the_shares_that_see_them(site_config):
    model = build(site_config)
    links = {i.id: i.share_ids for i in model.images}
    assert links == {
        IMG_PUBLIC: (SHARE_BIO, SHARE_FED),  # public: every share
        IMG_SHARED: (SHARE_BIO, SHARE_FED),  # owned by fedcloud, shared with biomed
        IMG_NO_OS: (SHARE_BIO,),  # private to biomed
    }  # the local snapshot has no marketplace URI; the retired image is not active
    public = model.images[0]
    assert public.marketplace_url.startswith("https://appdb.egi.eu/store/vo/image/4d2f6a8c")
    assert (public.os_name, public.os_version, public.os_platform) == ("ubuntu", "22.04", "x86_64")
    assert public.other_info["base_mpuri"].endswith("9b1c3e5a7d9f/")
    assert public.version == "2026.11.01" and public.description == "Ubuntu 22.04 base image for EGI"


def test_all_images_are_published_when_configured(tmp_path):
    model = build(load_config(write_site_config(tmp_path, cloudinfo_extra="  images: all")))
    local = next(i for i in model.images if i.id == IMG_LOCAL)
    assert local.marketplace_url is None and local.share_ids == (SHARE_BIO,)
    assert "MarketplaceURL" not in next(i for i in json_of(model)["CloudComputingImage"] if i["ID"] == IMG_LOCAL)


def test_an_image_without_os_fields_is_logged_and_published_as_unknown(site_config):
    with structlog.testing.capture_logs() as logs:
        model = build(site_config)
    warnings = [e["event"] for e in logs if e["log_level"] == "warning"]
    assert any(f"image {IMG_NO_OS} (image without OS fields) lacks os_distro, os_version, architecture" in w
               for w in warnings), warnings
    image = next(i for i in json_of(model)["CloudComputingImage"] if i["ID"] == IMG_NO_OS)
    assert (image["OSName"], image["OSVersion"], image["OSPlatform"]) == ("UNKNOWN", "UNKNOWN", "UNKNOWN")
    ldif = ldif_of(model)
    entry = ldif[ldif.index(f"GLUE2ApplicationEnvironmentID: {IMG_NO_OS}"):]
    entry = entry[:entry.index("\n\n")]
    assert "OSName=" not in entry.replace("\n ", "")  # the LDIF leaves unknown values out


def test_unreadable_appliance_attributes_are_logged_and_the_image_published(tmp_path):
    def change(data):
        data["images"][0]["properties"]["APPLIANCE_ATTRIBUTES"] = "{not json"

    config = load_config(write_site_config(tmp_path, site_file=variant_site(tmp_path, change)))
    with structlog.testing.capture_logs() as logs:
        model = build(config)
    assert any(f"image {IMG_PUBLIC} (EGI Ubuntu 22.04): property APPLIANCE_ATTRIBUTES is not JSON" in e["event"]
               for e in logs)
    assert model.images[0].id == IMG_PUBLIC and dict(model.images[0].other_info) == {}


def test_a_vo_project_the_cloud_does_not_have_is_reported(tmp_path):
    path = write_site_config(tmp_path)
    path.write_text(path.read_text().replace("projects: [biomed-cloud]", "projects: [biomed-cloud, no-such]"))
    with structlog.testing.capture_logs() as logs:
        model = build(load_config(path))
    assert any(e["event"] == "vos.biomed.projects names no-such, which the cloud does not have" for e in logs)
    assert len(model.shares) == 2


def test_missing_settings_are_named(tmp_path):
    path = write_site_config(tmp_path)
    path.write_text(path.read_text().replace("  middleware: openstack\n", ""))
    with pytest.raises(ModelError, match="cloudinfo.middleware: required"):
        build(load_config(path))


def test_renders_are_identical_when_nothing_changed_apart_from_times(site_config):
    from datetime import timedelta

    from cloudinfo_helpers import FIXED_NOW

    first, second = build(site_config), build(site_config)
    assert ldif_of(first) == ldif_of(second)
    assert json_of(first) == json_of(second)
    later = build(site_config, FIXED_NOW + timedelta(hours=1))
    strip = [line for line in ldif_of(later).splitlines() if not line.startswith("GLUE2EntityCreationTime")]
    assert strip == [line for line in ldif_of(first).splitlines() if not line.startswith("GLUE2EntityCreationTime")]


def test_a_private_flavour_is_offered_only_in_the_shares_of_the_projects_allowed_to_use_it(tmp_path):
    def change(data):
        data["flavors"][2]["projects"] = [P_BIO]  # g1.a100 only for biomed
        data["flavors"].append({"id": "9", "name": "other.private", "vcpus": 2, "ram": 4096, "public": False,
                                "projects": ["someone-else"]})

    model = build(load_config(write_site_config(tmp_path, site_file=variant_site(tmp_path, change))))
    assert [t.id for t in model.instance_types] == ["1", "2", "3"]  # nobody of ours may use "9"
    bio, fed = model.shares
    assert (bio.instance_max_cpu, fed.instance_max_cpu) == (8, 4)
    gpu = next(t for t in json_of(model)["CloudComputingInstanceType"] if t["ID"] == "3")
    assert gpu["Associations"]["Share"] == [SHARE_BIO]
    ldif = ldif_of(model).replace("\n ", "")
    fed_entry = ldif[ldif.index(f"GLUE2ShareID: {SHARE_FED}"):]
    fed_entry = fed_entry[:fed_entry.index("\n\n")]
    assert "ExecutionEnvironmentForeignKey: 3_" not in fed_entry and "ExecutionEnvironmentForeignKey: 2_" in fed_entry


def test_the_configured_endpoint_certificate_gives_issuer_and_host_dn(tmp_path):
    from fedcloud_site.demo.ca import CertificateAuthority

    ca = CertificateAuthority("/DC=org/DC=example/CN=Example Grid CA")
    files = ca.host("cloud.test.example.org").write(tmp_path / "cert")
    path = write_site_config(tmp_path)
    path.write_text(path.read_text().replace('    implementation_version: "2.96"\n',
                                             f'    implementation_version: "2.96"\n    certificate: {files.cert}\n'
                                             "    trusted_cas: [/DC=org/DC=example/CN=Example Grid CA]\n"))
    model = build(load_config(path))
    assert model.endpoint.issuer_ca == "/DC=org/DC=example/CN=Example Grid CA"
    assert model.endpoint.host_dn == "/DC=org/DC=example/CN=cloud.test.example.org"
    endpoint = json_of(model)["CloudComputingEndpoint"][0]
    assert endpoint["IssuerCA"] == "/DC=org/DC=example/CN=Example Grid CA"
    assert endpoint["TrustedCA"] == ["/DC=org/DC=example/CN=Example Grid CA"]
    ldif = ldif_of(model).replace("\n ", "")
    assert "GLUE2EndpointIssuerCA: /DC=org/DC=example/CN=Example Grid CA" in ldif
    assert "GLUE2EntityOtherInfo: HostDN=/DC=org/DC=example/CN=cloud.test.example.org" in ldif


def test_an_unreadable_endpoint_certificate_is_logged_and_left_out(tmp_path):
    path = write_site_config(tmp_path)
    path.write_text(path.read_text().replace('    implementation_version: "2.96"\n',
                                             '    implementation_version: "2.96"\n    certificate: missing.pem\n'))
    with structlog.testing.capture_logs() as logs:
        model = build(load_config(path))
    assert model.endpoint.issuer_ca is None
    assert any("cloudinfo.endpoint.certificate" in e["event"] and "missing.pem" in e["event"] for e in logs)
