"""``fedcloud-site check sender``: credentials, TLS to real servers on 127.0.0.1, last run.

TLS endpoints are real TLS servers (Python ``ssl``) with certificates of a test PKI; the STOMP
login test uses a real ActiveMQ (Debian ``activemq``, skipped when it is not installed).
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Iterator, List

import pytest

from fedcloud_site.demo import ca as pki
from fedcloud_site.timeutil import iso_utc, utcnow
from fedcloud_testing.activemq import ActiveMQBroker, BrokerTls, activemq_available


@dataclass
class Pki:
    ca: pki.CertificateAuthority
    capath: Path
    host: pki.CredentialFiles
    root: Path


@pytest.fixture(scope="module")
def test_pki(tmp_path_factory) -> Pki:
    root = tmp_path_factory.mktemp("probe-pki")
    ca = pki.CertificateAuthority("/DC=org/DC=example/CN=Sender Probe CA")
    capath = pki.write_ca_directory(root / "certificates", [ca])
    ca.write_cert(root / "ca.pem")
    return Pki(ca=ca, capath=capath, host=ca.host("apel.example.org").write(root / "host"), root=root)


class TlsServer:
    """A TLS server on 127.0.0.1 that requires a client certificate and then just holds the connection."""

    def __init__(self, credential: pki.Credential, client_ca: Path, directory: Path) -> None:
        files = credential.write(directory, "cert.pem", "key.pem")
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(files.cert), str(files.key))
        self.context.load_verify_locations(cafile=str(client_ca))
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            with self.context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except (OSError, ssl.SSLError):
            pass

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def tls_server(test_pki, tmp_path) -> Iterator:
    servers: List[TlsServer] = []

    def _start(credential: pki.Credential) -> TlsServer:
        server = TlsServer(credential, test_pki.root / "ca.pem", tmp_path / f"server{len(servers)}")
        servers.append(server)
        return server

    yield _start
    for server in servers:
        server.close()


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return sock.getsockname()[1]


def _config(site_config, test_pki: Pki, brokers: List[str]) -> Path:
    return site_config(f"""
        ssm:
          certificate: {test_pki.host.cert}
          key: {test_pki.host.key}
          capath: {test_pki.capath}
          brokers: {json.dumps(brokers)}
        """)


def _last_run(tmp_path: Path, minutes_ago: float = 2, error=None) -> None:
    state = tmp_path / "state" / "ssm"
    state.mkdir(parents=True, exist_ok=True)
    data = {"finished": iso_utc(utcnow() - timedelta(minutes=minutes_ago)), "sent": 3, "failed": 0,
            "rejected": 0, "remaining": 0, "error": error}
    (state / "last-run.json").write_text(json.dumps(data), encoding="utf-8")


def test_reachable_broker_with_valid_certificates_is_ok(tmp_path, site_config, probe, test_pki, tls_server):
    server = tls_server(test_pki.ca.server())
    _last_run(tmp_path)
    run = probe(_config(site_config, test_pki, [f"127.0.0.1:{server.port}"]), "sender")
    assert run.status == "OK", run.line
    assert "1 broker(s) reachable (configured, TLS handshake)" in run.text
    assert "last sender run 2m" in run.text
    assert run.perf("endpoints_reachable") == "1;;;0;1"


def test_broker_certificate_close_to_expiry_is_warning(tmp_path, site_config, probe, test_pki, tls_server):
    server = tls_server(test_pki.ca.server(days=10))
    _last_run(tmp_path)
    run = probe(_config(site_config, test_pki, [f"127.0.0.1:{server.port}"]), "sender")
    assert run.status == "WARNING", run.line
    assert f"127.0.0.1:{server.port} (/DC=org/DC=example/CN=localhost) certificate expires in" in run.text


def test_no_broker_listening_is_critical(tmp_path, site_config, probe, test_pki):
    _last_run(tmp_path)
    port = _free_port()
    run = probe(_config(site_config, test_pki, [f"127.0.0.1:{port}"]), "sender", "--connect-timeout", "3")
    assert run.status == "CRITICAL", run.line
    assert f"no broker reachable (configured): 127.0.0.1:{port} Connection refused" in run.text


def test_one_of_two_brokers_down_is_warning(tmp_path, site_config, probe, test_pki, tls_server):
    server = tls_server(test_pki.ca.server())
    _last_run(tmp_path)
    brokers = [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{server.port}"]
    run = probe(_config(site_config, test_pki, brokers), "sender")
    assert run.status == "WARNING", run.line
    assert "1 of 2 brokers unreachable" in run.text


def test_broker_certificate_from_an_untrusted_ca_is_critical(tmp_path, site_config, probe, test_pki, tls_server):
    stranger = pki.CertificateAuthority("/DC=org/DC=elsewhere/CN=Stranger CA")
    server = tls_server(stranger.server())
    _last_run(tmp_path)
    run = probe(_config(site_config, test_pki, [f"127.0.0.1:{server.port}"]), "sender")
    assert run.status == "CRITICAL", run.line
    assert "certificate rejected" in run.text


def test_failed_last_run_is_critical(tmp_path, site_config, probe, test_pki, tls_server):
    server = tls_server(test_pki.ca.server())
    _last_run(tmp_path, error="broker sent ERROR: queue full")
    run = probe(_config(site_config, test_pki, [f"127.0.0.1:{server.port}"]), "sender")
    assert run.status == "CRITICAL", run.line
    assert "last sender run failed: broker sent ERROR: queue full" in run.text


def test_no_known_broker_is_unknown(tmp_path, site_config, probe, test_pki):
    _last_run(tmp_path)
    run = probe(_config(site_config, test_pki, []), "sender")
    assert run.status == "UNKNOWN", run.line
    assert "no brokers configured and none discovered" in run.text


def test_brokers_the_sender_discovered_last_are_checked(tmp_path, site_config, probe, test_pki, tls_server):
    server = tls_server(test_pki.ca.server())
    _last_run(tmp_path)
    (tmp_path / "state" / "ssm" / "brokers.json").write_text(json.dumps(
        {"source": "ldap://bdii.example.org:2170", "saved": 0, "brokers": [f"127.0.0.1:{server.port}"]}))
    run = probe(_config(site_config, test_pki, []), "sender")
    assert run.status == "OK", run.line
    assert "(last discovered, TLS handshake)" in run.text


@pytest.fixture(scope="module")
def activemq(tmp_path_factory, test_pki):
    missing = activemq_available()
    if missing:
        pytest.skip(f"ActiveMQ not installed: {missing}")
    broker_cred = test_pki.ca.server().write(tmp_path_factory.mktemp("amq-cred"), "cert.pem", "key.pem")
    tls = BrokerTls(broker_cred.cert, broker_cred.key, [test_pki.root / "ca.pem"])
    broker = ActiveMQBroker(tmp_path_factory.mktemp("probe-activemq"), tls=tls, heap_mb=256).start()
    yield broker
    broker.stop()


def test_stomp_login_to_a_real_activemq(tmp_path, site_config, probe, test_pki, activemq):
    _last_run(tmp_path)
    run = probe(_config(site_config, test_pki, [f"127.0.0.1:{activemq.tls_port}"]), "sender", "--stomp")
    assert run.status == "OK", run.line
    assert f"STOMP login to 127.0.0.1:{activemq.tls_port} accepted" in run.text
