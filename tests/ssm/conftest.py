"""Fixtures of the SSM tests: a test PKI, a real ActiveMQ broker (plain + TLS STOMP), a verifying consumer.

Needs the Debian packages ``activemq`` (with a Java runtime), ``openssl``, and for discovery
``slapd``/``ldap-utils`` (all in the README test command).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import List

import pytest
from ssm_helpers import HOST_FQDN, Consumer, Pki

from fedcloud_site.demo import ca as pki
from fedcloud_site.log import configure_logging
from fedcloud_site.queue import MessageQueue
from fedcloud_testing.activemq import ActiveMQBroker, BrokerTls, activemq_available


@pytest.fixture(autouse=True)
def _fresh_log_stream():
    """``main()`` binds logging to the stderr of the test that called it; rebind after each test."""
    yield
    configure_logging()


@pytest.fixture(scope="session")
def test_pki(tmp_path_factory) -> Pki:
    root = tmp_path_factory.mktemp("ssm-pki")
    ca = pki.CertificateAuthority("/DC=org/DC=example/CN=SSM Test CA")
    ca.write_cert(root / "ca.pem")
    capath = pki.write_ca_directory(root / "certificates", [ca])
    host = ca.host(HOST_FQDN)
    broker = ca.server("/DC=org/DC=example/CN=localhost")
    server = ca.host("receiver.example.org")
    other = pki.CertificateAuthority("/DC=org/DC=other/CN=Unrelated CA")
    return Pki(root=root, ca=ca, capath=capath, host=host.write(root / "host"), host_dn=host.dn,
               broker=broker.write(root / "broker", "cert.pem", "key.pem"),
               server=server.write(root / "server", "cert.pem", "key.pem"),
               other_capath=pki.write_ca_directory(root / "other-certificates", [other]))


def _start_broker(directory: Path, test_pki: Pki) -> ActiveMQBroker:
    missing = activemq_available()
    if missing:
        pytest.skip(f"ActiveMQ not installed: {missing}")
    tls = BrokerTls(test_pki.broker.cert, test_pki.broker.key, [test_pki.ca_file])
    return ActiveMQBroker(directory, tls=tls, heap_mb=384).start()


@pytest.fixture(scope="session")
def broker(tmp_path_factory, test_pki):
    """One real ActiveMQ for the whole session (never killed by tests)."""
    instance = _start_broker(tmp_path_factory.mktemp("activemq"), test_pki)
    yield instance
    instance.stop()


@dataclass
class RevokedBroker:
    """An ActiveMQ whose certificate its CA revoked, and the CA directories with and without that CRL entry."""

    broker: ActiveMQBroker
    revoking_capath: Path  # its CRL lists the broker's certificate
    capath: Path  # the same CA, CRL issued before the revocation (as ``test_pki.capath``)


@pytest.fixture(scope="session")
def revoked_broker(tmp_path_factory, test_pki):
    """A second ActiveMQ, started on first use, with a key store (PKCS#12) made here and handed over as is.

    Its certificate is revoked only in ``revoking_capath``: to senders trusting ``test_pki.capath`` it is an
    ordinary broker, which the fault tests may kill, freeze and restart (they leave it running).
    """
    missing = activemq_available()
    if missing:
        pytest.skip(f"ActiveMQ not installed: {missing}")
    root = tmp_path_factory.mktemp("revoked-broker")
    credential = test_pki.ca.server("/DC=org/DC=example/CN=localhost")
    keystore = root / "broker.p12"
    keystore.write_bytes(credential.pkcs12(b"revoked-store", name=b"broker"))
    before = pki.write_ca_directory(root / "certificates", [test_pki.ca])
    test_pki.ca.revoke(credential)
    revoking = pki.write_ca_directory(root / "certificates-revoking", [test_pki.ca])
    tls = BrokerTls(None, None, [test_pki.ca_file], keystore=keystore, keystore_password="revoked-store")
    instance = ActiveMQBroker(root / "activemq", tls=tls, heap_mb=384).start()
    yield RevokedBroker(broker=instance, revoking_capath=revoking, capath=before)
    instance.stop()


@pytest.fixture
def fault_broker(revoked_broker) -> ActiveMQBroker:
    """The second broker, for tests that kill, freeze and restart it (the session's ``broker`` stays up)."""
    broker = revoked_broker.broker
    if not broker.running():
        broker.start()
    return broker


@pytest.fixture
def destination() -> str:
    """A queue of its own for each test."""
    return f"/queue/test.ssm.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def consume():
    """``consume(port, destination)`` -> a started :class:`Consumer` (stopped after the test)."""
    started: List[Consumer] = []

    def _consume(port: int, destination: str) -> Consumer:
        consumer = Consumer(port, destination).start()
        started.append(consumer)
        return consumer

    yield _consume
    for consumer in started:
        consumer.stop()


@pytest.fixture
def outgoing(tmp_path) -> MessageQueue:
    return MessageQueue(tmp_path / "outgoing")


