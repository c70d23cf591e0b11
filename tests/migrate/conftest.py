"""Fixtures of the migration tests: the peers' own example files (fetched once, cached, never committed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import pytest

from fedcloud_site.demo import ca as pki
from fedcloud_site.demo.ams import AmsSimulator
from fedcloud_site.log import configure_logging
from fedcloud_site.smime import verify
from fedcloud_testing.caso import CASO_VERSION, fill_sample
from fedcloud_testing.peers import PeerUnavailable, github_file, sdist_member

#: apel/ssm's shipped sender configuration, at the 4.0.0 release
SSM_REPO, SSM_TAG = "apel/ssm", "4.0.0-1"
SSM_SENDER_SHA256 = "74b6cf9f204d98c1d0e490869b2751fa5108613eb2464e8f37a9a6a18a15665e"
ATROPE_VERSION = "2.0.0"


def _peer(fetch: Callable[[], Path]) -> Path:
    try:
        return fetch()
    except PeerUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def caso_sample() -> str:
    """cASO 5.2.2's etc/caso/caso.conf.sample (from its sdist on PyPI)."""
    return _peer(lambda: sdist_member("caso", CASO_VERSION, "etc/caso/caso.conf.sample")).read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def ssm_sender_cfg() -> str:
    """apel/ssm's conf/sender.cfg (4.0.0)."""
    return _peer(lambda: github_file(SSM_REPO, SSM_TAG, "conf/sender.cfg", SSM_SENDER_SHA256)).read_text(
        encoding="utf-8")


@pytest.fixture(scope="session")
def atrope_sources() -> str:
    """atrope's etc/hepix.yaml.sample (its sources.yaml format, from the atrope 2.0.0 sdist)."""
    return _peer(lambda: sdist_member("atrope", ATROPE_VERSION, "etc/hepix.yaml.sample")).read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def voms_json_sample() -> str:
    """The VO -> project map sample (Keystone-VOMS format cASO's mapping_file reads), from the atrope sdist:
    cASO 5.2.2's sdist ships no voms.json.sample."""
    return _peer(lambda: sdist_member("atrope", ATROPE_VERSION, "etc/voms.json.sample")).read_text(encoding="utf-8")


@pytest.fixture
def caso_site(tmp_path: Path, caso_sample: str):
    """``caso_site(values)`` -> caso.conf: the sample filled with a site's values (spooldir, output_path in tmp)."""

    def make(values: Dict[Tuple[str, str], str], name: str = "caso.conf") -> Path:
        base: Dict[Tuple[str, str], Any] = {
            ("DEFAULT", "site_name"): "TEST-SITE", ("DEFAULT", "messengers"): "ssm",
            ("DEFAULT", "spooldir"): str(tmp_path / "caso-spool"),
            ("keystone_auth", "auth_type"): "password",
            ("keystone_auth", "auth_url"): "https://keystone.test.example.org:5000/v3",
            ("keystone_auth", "username"): "caso", ("keystone_auth", "password"): "caso-secret",
            ("keystone_auth", "user_domain_name"): "Default", ("keystone_auth", "project_domain_name"): "Default",
            ("ssm", "output_path"): str(tmp_path / "outgoing"),
        }
        base.update(values)
        path = tmp_path / name
        path.write_text(fill_sample(caso_sample, {k: v for k, v in base.items() if v is not None}), encoding="utf-8")
        return path

    return make


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    """An /etc/fedcloud-site stand-in with a main file that only keeps state in tmp."""
    directory = tmp_path / "etc"
    (directory / "conf.d").mkdir(parents=True)
    (directory / "fedcloud-site.yaml").write_text(
        f"accounting: {{state_dir: {tmp_path / 'state'}}}\n", encoding="utf-8")
    return directory


@dataclass
class AmsSite:
    """The AMS simulator with a test PKI, and apel-ssm's shipped sender.cfg pointed at it."""

    ams: Any
    tmp: Path
    sample: str
    capath: Path
    host: Any
    topic: str = "eu-egi-cloud-accounting"

    def sender_cfg(self, queue_dir: Path) -> Path:
        """apel-ssm's sender.cfg as a site would have edited it: AMS on 127.0.0.1, token, this queue."""
        path = self.tmp / "sender.cfg"
        path.write_text(
            self.sample.replace("host:\n", "host: 127.0.0.1\n").replace("port: 443", f"port: {self.ams.port}")
            .replace("#token:", "token: s3cret").replace("destination: gLite-APEL", f"destination: {self.topic}")
            .replace("path: /var/spool/apel/outgoing", f"path: {queue_dir}")
            .replace("certificate: /etc/grid-security/hostcert.pem", f"certificate: {self.host.cert}")
            .replace("key: /etc/grid-security/hostkey.pem", f"key: {self.host.key}")
            .replace("capath: /etc/grid-security/certificates", f"capath: {self.capath}"), encoding="utf-8")
        return path

    def delivered(self) -> List[bytes]:
        """The payloads AMS received (signatures verified)."""
        return [verify(m.data).content for m in self.ams.messages("accounting", self.topic)]


@pytest.fixture
def ams_site(tmp_path: Path, ssm_sender_cfg: str):
    ca = pki.CertificateAuthority("/DC=org/DC=example/CN=Migration Test CA")
    capath = pki.write_ca_directory(tmp_path / "certificates", [ca])
    host = ca.host("cloud.test.example.org").write(tmp_path / "host")
    server = ca.server("/DC=org/DC=example/CN=localhost").write(tmp_path / "ams", "cert.pem", "key.pem")
    ams = AmsSimulator(server.cert, server.key).start()
    site = AmsSite(ams, tmp_path, ssm_sender_cfg, capath, host)
    ams.add_topic("accounting", site.topic)
    ams.add_token("s3cret", "accounting")
    yield site
    ams.stop()


@pytest.fixture(autouse=True)
def _fresh_log_stream():
    """``main()`` binds logging to the stderr of the test that called it; rebind after each test."""
    yield
    configure_logging()
