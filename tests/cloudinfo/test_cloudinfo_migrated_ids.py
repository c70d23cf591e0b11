"""After ``fedcloud-site migrate --from cloud-info-provider=SITE.yaml`` we publish the entries
cloud-info-provider 1.2 published for the same site, under the same IDs (what the BDII and AMS consumers
know them by), and to its AMS topic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cloudinfo_helpers import SITE_FILE, build, json_of

from fedcloud_site.cli import main
from fedcloud_site.cloudinfo.settings import Settings as CloudinfoSettings
from fedcloud_site.config import load_config
from fedcloud_site.log import configure_logging
from fedcloud_testing.cip import add_member_user, run_cip, site_file
from fedcloud_testing.openstack import OpenStackSim, from_site

P_FED = "0a1b2c3d4e5f40718293a4b5c6d7e8f9"
P_BIO = "1b2c3d4e5f60418293a4b5c6d7e8f90a"


@pytest.fixture(autouse=True)
def _fresh_log_stream():
    yield
    configure_logging()


def ids(document) -> dict:
    return {cls: sorted({obj["ID"] for obj in objects}) for cls, objects in document.items()}


def test_the_migrated_site_publishes_cloud_info_providers_ids(cip_python, tmp_path: Path):
    data = from_site(SITE_FILE)
    add_member_user(data, [P_FED, P_BIO], private_flavors=["3"])
    with OpenStackSim(data) as sim:
        cip_site = site_file(tmp_path / "cip-site.yaml", "TEST-SITE", sim.auth_url,
                             {"fedcloud.egi.eu": P_FED, "biomed": P_BIO})
        run = run_cip(cip_python, sim.auth_url, cip_site, "1234G0", "TEST-SITE", tmp_path / "cip")
        assert run.returncode == 0, run.stderr.decode(errors="replace")[-3000:]
        theirs = json.loads(run.stdout)
        etc = tmp_path / "etc"
        (etc / "conf.d").mkdir(parents=True)
        auth = "".join(f"    {key}: {value}\n" for key, value in sim.auth.items())
        (etc / "fedcloud-site.yaml").write_text(  # what the site had before: the cloud, not the site identity
            f"cloud:\n  backend: openstack\n  openstack:\n{auth}"
            f"cloudinfo:\n  state_dir: {tmp_path / 'state'}\n  cache_dir: {tmp_path / 'cache'}\n", encoding="utf-8")
        assert main(["-c", str(etc / "fedcloud-site.yaml"), "migrate", "--from", f"cloud-info-provider={cip_site}",
                     "--gocdb-service-id", "1234G0"]) == 0
        config = load_config(etc / "fedcloud-site.yaml")
        ours = json_of(build(config))
    ams = config.section(CloudinfoSettings).ams
    assert ams.enabled and ams.topic == "SITE_TEST-SITE_ENDPOINT_1234G0"
    mine, peer = ids(ours), ids(theirs)
    for cls in ("CloudComputingService", "CloudComputingEndpoint", "CloudComputingManager", "Share",
                "AccessPolicy", "MappingPolicy"):
        assert peer.get(cls), f"cloud-info-provider published no {cls}"
        assert mine.get(cls) == peer[cls], cls
    assert mine == peer  # and every other entry (instance types, images, accelerators) too
