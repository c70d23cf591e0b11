"""Helpers of the SSM tests: the test PKI record, a verifying STOMP consumer, queue filling, config writing."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import stomp
from dirq.QueueSimple import QueueSimple

from fedcloud_site import smime
from fedcloud_site.demo import ca as pki
from fedcloud_site.queue import MessageQueue
from fedcloud_site.x509 import subject_dn, verify_chain

HOST_FQDN = "apel.example.org"


@dataclass
class Pki:
    """The tests' own CA with the broker's and the sender's credentials, and a CA nobody trusts."""

    root: Path
    ca: pki.CertificateAuthority
    capath: Path
    host: pki.CredentialFiles
    host_dn: str
    broker: pki.CredentialFiles
    server: pki.CredentialFiles  # the receiver's certificate (encryption)
    other_capath: Path  # a CA directory of an unrelated CA

    @property
    def ca_file(self) -> Path:
        return self.root / "ca.pem"


@dataclass
class Received:
    headers: Dict[str, str]
    body: bytes


@dataclass
class Consumer(stomp.ConnectionListener):
    """Receives every message of a destination (plain STOMP, client-individual acks)."""

    port: int
    destination: str
    messages: List[Received] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)
    conn: Optional[Any] = None

    def start(self) -> Consumer:
        conn = stomp.Connection12([("127.0.0.1", self.port)], auto_decode=False, reconnect_attempts_max=3)
        # set before subscribing: the first message can reach on_message (receiver thread) before subscribe()
        # returns, and an ack on a missing connection left it unacknowledged, so the broker sent no more
        self.conn = conn
        conn.set_listener("consumer", self)
        conn.connect(wait=True)
        conn.subscribe(self.destination, id="1", ack="client-individual")
        return self

    def on_message(self, frame: Any) -> None:
        with self.cond:
            self.messages.append(Received(dict(frame.headers), frame.body))
            self.cond.notify_all()
        self.conn.ack(frame.headers["ack"])  # type: ignore[union-attr]

    def wait_for(self, count: int, timeout: float = 30.0) -> List[Received]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.messages) < count and time.monotonic() < deadline:
                self.cond.wait(0.1)
            return list(self.messages)

    def wait_for_ids(self, ids, timeout: float = 60.0) -> List[Received]:
        """Wait until every empa-id of ``ids`` arrived at least once (duplicates do not count)."""
        wanted = set(ids)
        deadline = time.monotonic() + timeout
        with self.cond:
            while time.monotonic() < deadline:
                if wanted <= {m.headers.get("empa-id") for m in self.messages}:
                    break
                self.cond.wait(0.2)
            return list(self.messages)

    def settle(self, quiet: float = 1.0, timeout: float = 60.0) -> List[Received]:
        """Wait until no message arrived for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        last = -1
        while time.monotonic() < deadline:
            with self.cond:
                count = len(self.messages)
            if count == last:
                break
            last = count
            time.sleep(quiet)
        with self.cond:
            return list(self.messages)

    def stop(self) -> None:
        if self.conn is not None:
            try:
                self.conn.disconnect()
            except Exception:  # noqa: BLE001 - broker may be gone
                pass


def apel_receive(body: bytes, capath: Path, server: Optional[pki.CredentialFiles] = None) -> tuple:
    """What the APEL receiver does: decrypt if needed, verify the signature, check the signer's chain
    against the CA directory, strip the MIME headers; returns (payload, signer DN)."""
    if smime.is_encrypted(body):
        assert server is not None, "encrypted message but no server key"
        from fedcloud_site.x509 import load_certificate, load_private_key

        body = smime.decrypt(body, load_certificate(server.cert), load_private_key(server.key))  # type: ignore[arg-type]
    verified = smime.verify(body)
    verify_chain(verified.signer, capath, verified.certificates)
    return verified.content, subject_dn(verified.signer)


def fill_queue(queue: MessageQueue, count: int, size: int = 2000) -> Dict[str, bytes]:
    """Add ``count`` APEL-like messages of about ``size`` bytes; returns name -> payload.

    Written with dirq directly (same layout, no fsync): durability is not under test here.
    """
    fast = QueueSimple(str(queue.path))
    added = {}
    for index in range(count):
        records = []
        line = 0
        while sum(len(r) for r in records) < size:
            records.append(f"VMUUID: vm-{index}-{line}\nSiteName: TEST-SITE\nCpuCount: 2\n%%\n")
            line += 1
        payload = ("APEL-cloud-message: v0.4\n" + "".join(records)).encode("ascii")
        added[str(fast.add(payload))] = payload
    return added


def ssm_yaml(tmp_path: Path, test_pki: Pki, queue: MessageQueue, *, brokers: Optional[List[str]] = None,
             destination: str = "/queue/test", extra: str = "", use_ssl: bool = True,
             capath: Optional[Path] = None, storage_queue_dir: Optional[Path] = None) -> Path:
    """A complete configuration file for the ssm daemon under test (``storage_queue_dir``: the accounting
    section's, where storage records are queued)."""
    broker_list = ", ".join(f'"{b}"' for b in (brokers or []))
    storage = f"  storage_queue_dir: {storage_queue_dir}\n" if storage_queue_dir is not None else ""
    text = f"""site:
  name: TEST-SITE
cloud:
  backend: static
  static:
    site_file: {Path(__file__).resolve().parents[2] / 'etc' / 'fedcloud-site' / 'demo-site.yaml'}
    state_file: {tmp_path / 'static-state.json'}
accounting:
  state_dir: {tmp_path / 'accounting'}
  queue_dir: {queue.path}
{storage}ssm:
  state_dir: {tmp_path / 'ssm-state'}
  destination: "{destination}"
  certificate: {test_pki.host.cert}
  key: {test_pki.host.key}
  capath: {capath or test_pki.capath}
  use_ssl: {'true' if use_ssl else 'false'}
  brokers: [{broker_list}]
  receipt_timeout: 10s
  connect_timeout: 5s
{extra}"""
    path = tmp_path / "fedcloud-site.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@contextmanager
def other_host_tls_server(tmp_path: Path, test_pki: Pki) -> Iterator[int]:
    """A TLS server on 127.0.0.1 with a certificate of the test CA for other.example.org (not localhost);
    yields its port."""
    other = test_pki.ca.issue("/DC=org/DC=example/CN=other.example.org", profile="server",
                              sans=["other.example.org"]).write(tmp_path / "other", "cert.pem", "key.pem")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(other.cert), str(other.key))
    listener = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=serve_tls, args=(listener, context), daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def serve_tls(listener, context, connections: int = 5) -> None:
    """Accept a few TLS connections, each handshaken in a thread of its own (as brokers do: stomp.py 8 with
    pyOpenSSL opens a second connection before it finishes the first), then close them."""

    def handshake(client) -> None:
        try:
            client.settimeout(5)
            context.wrap_socket(client, server_side=True).close()
        except OSError:
            client.close()

    for _ in range(connections):
        try:
            client, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=handshake, args=(client,), daemon=True).start()
