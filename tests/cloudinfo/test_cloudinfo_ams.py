"""Optional publishing of the GLUE 2.1 JSON to ARGO AMS (the AMS simulator over HTTPS, test PKI)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from cloudinfo_helpers import write_site_config

from fedcloud_site.config import ConfigError, load_config
from fedcloud_site.demo.ams import AmsSimulator
from fedcloud_site.demo.ca import CertificateAuthority
from fedcloud_site.errors import FedcloudSiteError
from fedcloud_site.runner import Runner

TOPIC = "SITE_TEST-SITE_ENDPOINT_1234G0"  # SITE_<site>_ENDPOINT_<GOCDB service id>
PROJECT = "egi_cloud_info"


@pytest.fixture
def ams(tmp_path: Path) -> Iterator[dict]:
    ca = CertificateAuthority("/DC=org/DC=example/CN=AMS Test CA")
    ca_file = ca.write_cert(tmp_path / "pki" / "ca.pem")
    server = ca.server().write(tmp_path / "pki" / "server")
    host = ca.host("cloud.test.example.org").write(tmp_path / "pki" / "host")
    sim = AmsSimulator(cert_file=server.cert, key_file=server.key, client_ca_file=ca_file).start()
    sim.add_topic(PROJECT, TOPIC)
    sim.add_token("site-token", PROJECT)
    sim.add_certificate("/DC=org/DC=example/CN=cloud.test.example.org", "site-token")
    yield {"sim": sim, "ca": ca_file, "host": host}
    sim.stop()


def ams_config(tmp_path: Path, ams: dict, auth: str) -> Path:
    sim = ams["sim"]
    text = (f"  ams:\n    enabled: true\n    host: 127.0.0.1\n    port: {sim.port}\n    cacert: {ams['ca']}\n"
            f"    timeout: 10\n    retries: 0\n{auth}")
    return write_site_config(tmp_path, cloudinfo_extra=text)


def test_each_refresh_publishes_the_json_document_to_the_site_topic(tmp_path, ams):
    config = ams_config(tmp_path, ams, "    token: site-token\n")
    assert Runner("cloudinfo", config).run_once() == 0
    [message] = ams["sim"].messages(PROJECT, TOPIC)
    assert message.data == (tmp_path / "cache" / "cloudinfo.json").read_bytes()
    assert message.attributes == {}


def test_the_host_certificate_is_exchanged_for_a_token(tmp_path, ams):
    sim = ams["sim"]
    auth = (f"    certificate: {ams['host'].cert}\n    key: {ams['host'].key}\n"
            f"    auth_url: {sim.url}/v1/service-types/ams/hosts/127.0.0.1:authx509\n")
    assert Runner("cloudinfo", ams_config(tmp_path, ams, auth)).run_once() == 0
    assert len(sim.messages(PROJECT, TOPIC)) == 1


def test_a_refused_publication_leaves_the_bdii_cache_written_and_the_run_incomplete(tmp_path, ams):
    ams["sim"].state.max_request_bytes = 2000  # the document is larger than this service accepts
    config = ams_config(tmp_path, ams, "    token: site-token\n")
    assert Runner("cloudinfo", config).run_once() == FedcloudSiteError.exit_status
    assert (tmp_path / "cache" / "cloudinfo.ldif").exists()
    assert ams["sim"].messages(PROJECT, TOPIC) == []


def test_ams_needs_a_topic_or_the_gocdb_service_id(tmp_path):
    path = write_site_config(tmp_path, cloudinfo_extra="  ams: {enabled: true, token: t}")
    path.write_text(path.read_text().replace("  gocdb_service_id: 1234G0\n", ""))
    with pytest.raises(ConfigError, match="ams.topic: required"):
        load_config(path)
