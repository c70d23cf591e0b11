"""Faults around a real ActiveMQ: after each, every queued message was delivered or is still queued.

Duplicates are allowed only where a receipt was lost, and are then bounded by the
window and counted (``resent``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Dict, Optional

import pytest
from ssm_helpers import fill_queue, other_host_tls_server, ssm_yaml

from fedcloud_site.cli import main
from fedcloud_site.demo import ca as pki
from fedcloud_site.log import get_logger
from fedcloud_site.queue import MessageQueue
from fedcloud_site.ssm.sender import MAX_PENDING_REMOVALS, DrainResult, InflightJournal, Sender
from fedcloud_site.ssm.signing import ca_bundle, load_signer
from fedcloud_site.ssm.stomp_transport import StompTransport, TlsFiles
from fedcloud_site.ssm.transport import TransportError
from fedcloud_testing.ldap import free_port

WINDOW = 40
pytestmark = pytest.mark.services


def _tls(tmp_path: Path, test_pki, cert: Optional[Path] = None, key: Optional[Path] = None) -> TlsFiles:
    bundle = tmp_path / "broker-ca.pem"
    bundle.write_bytes(ca_bundle(test_pki.capath))
    return TlsFiles(cert or test_pki.host.cert, key or test_pki.host.key, bundle)


def _sender(tmp_path: Path, test_pki, queue: MessageQueue, port: int, destination: str, **transport_options):
    options = dict(window=WINDOW, receipt_timeout=5.0, connect_timeout=3.0, heartbeat=2.0, reconnects=10,
                   backoff=(0.5, 1.0))
    options.update(transport_options)
    log = get_logger("ssm-test")
    transport = StompTransport([("localhost", port)], destination, tls=_tls(tmp_path, test_pki), log=log,
                               **options)
    signer = load_signer(test_pki.host.cert, test_pki.host.key, test_pki.capath)
    return Sender(queue, signer, transport, journal=InflightJournal(tmp_path / "state" / "inflight", log),
                  flush_timeout=30.0, log=log)


def _drain_in_thread(sender: Sender) -> tuple:
    box: Dict[str, DrainResult] = {}
    thread = threading.Thread(target=lambda: box.setdefault("result", sender.drain()), daemon=True)
    thread.start()
    return thread, box


def _wait_until(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def _assert_nothing_lost(queued, received_ids, queue: MessageQueue, max_duplicates: int) -> Counter:
    counts = Counter(received_ids)
    still_queued = set(queue.names())
    assert set(queued) == set(counts) | still_queued, "a message was lost"
    assert not set(counts) - set(queued), "a message nobody queued arrived"
    duplicates = sum(n - 1 for n in counts.values())
    assert duplicates <= max_duplicates
    assert not list(queue.path.rglob("*.lck")), "a message was left locked"
    return counts


def test_broker_killed_and_restarted_mid_batch_loses_nothing(tmp_path, test_pki, fault_broker, destination,
                                                             consume, outgoing):
    queued = fill_queue(outgoing, 1200, size=3000)
    sender = _sender(tmp_path, test_pki, outgoing, fault_broker.tls_port, destination)
    thread, box = _drain_in_thread(sender)
    _wait_until(lambda: outgoing.count() < 900)
    # frozen first, so that receipts stop and messages are surely in flight when it dies (a sender the CPU
    # load slowed down could otherwise have every receipt in hand at the moment of the kill)
    os.kill(fault_broker.pid, signal.SIGSTOP)
    _wait_until(lambda: len(sender.transport.unconfirmed()) > 0)
    fault_broker.kill()  # the connection drops at once (the kernel resets it); their receipts are lost
    fault_broker.start()
    thread.join(90)
    assert not thread.is_alive()
    result = box["result"]

    assert result.error is None
    assert result.remaining == 0 and result.sent == len(queued)
    assert 0 < result.resent <= WINDOW  # receipts lost with the broker: sent again, at most one window
    consumer = consume(fault_broker.port, destination)
    consumer.wait_for_ids(queued)
    received = consumer.settle(quiet=0.5)
    _assert_nothing_lost(queued, [m.headers["empa-id"] for m in received], outgoing, max_duplicates=result.resent)


def test_receipts_that_never_come_end_the_run_and_keep_the_messages(tmp_path, test_pki, fault_broker, destination,
                                                                   consume, outgoing):
    queued = fill_queue(outgoing, 600, size=3000)
    sender = _sender(tmp_path, test_pki, outgoing, fault_broker.tls_port, destination, receipt_timeout=1.0,
                     connect_timeout=1.0, reconnects=1, heartbeat=0.0)
    thread, box = _drain_in_thread(sender)
    _wait_until(lambda: outgoing.count() < 450)
    os.kill(fault_broker.pid, signal.SIGSTOP)  # the broker freezes: TCP stays up, nothing answers
    try:
        thread.join(60)
        assert not thread.is_alive()
    finally:
        os.kill(fault_broker.pid, signal.SIGCONT)
    first = box["result"]
    assert first.error is not None and "receipt" in first.error
    assert 0 < first.remaining < len(queued)
    assert first.failed <= WINDOW + 1  # in flight when the broker froze: never more than the window
    assert not list(outgoing.path.rglob("*.lck"))

    second = _sender(tmp_path, test_pki, outgoing, fault_broker.tls_port, destination).drain()
    assert second.error is None and second.remaining == 0
    consumer = consume(fault_broker.port, destination)
    consumer.wait_for_ids(queued)
    received = consumer.settle(quiet=0.5)
    counts = _assert_nothing_lost(queued, [m.headers["empa-id"] for m in received], outgoing,
                                  max_duplicates=WINDOW)
    assert first.sent + second.sent == len(queued)
    assert sum(counts.values()) <= len(queued) + WINDOW


def test_broker_certificate_from_an_untrusted_ca_is_refused(tmp_path, test_pki, broker, outgoing, capsys):
    queued = fill_queue(outgoing, 3)
    config = ssm_yaml(tmp_path, test_pki, outgoing, brokers=[f"localhost:{broker.tls_port}"],
                      capath=test_pki.other_capath)

    assert main(["--config", str(config), "ssm", "once"]) == 1

    assert "broker certificate rejected" in capsys.readouterr().err
    assert set(outgoing.names()) == set(queued)
    assert not list(outgoing.path.rglob("*.lck"))


def test_broker_refuses_a_client_certificate_it_does_not_trust(tmp_path, test_pki, broker, destination, outgoing):
    stranger = pki.CertificateAuthority("/DC=org/DC=stranger/CN=Stranger CA").host("apel.example.org")
    files = stranger.write(tmp_path / "stranger")
    queued = fill_queue(outgoing, 3)
    log = get_logger("ssm-test")
    transport = StompTransport([("localhost", broker.tls_port)], destination,
                               tls=_tls(tmp_path, test_pki, files.cert, files.key), connect_timeout=0.75, log=log)
    with pytest.raises(TransportError, match="TLS|connection"):
        transport.open()
    signer = load_signer(test_pki.host.cert, test_pki.host.key)
    result = Sender(outgoing, signer, transport, journal=InflightJournal(tmp_path / "inflight", log), log=log).drain()
    assert result.error is not None and result.sent == 0
    assert set(outgoing.names()) == set(queued)


def test_expired_client_certificate_is_refused_by_the_broker(tmp_path, test_pki, broker, destination):
    from datetime import timedelta

    from fedcloud_site.timeutil import utcnow

    expired = test_pki.ca.host("apel.example.org", not_before=utcnow() - timedelta(days=10),
                               not_after=utcnow() - timedelta(days=1))
    files = expired.write(tmp_path / "expired")
    transport = StompTransport([("localhost", broker.tls_port)], destination,
                               tls=_tls(tmp_path, test_pki, files.cert, files.key), connect_timeout=0.75)
    with pytest.raises(TransportError):
        transport.open()


def test_expired_or_mismatched_credentials_stop_the_sender_before_it_connects(tmp_path, test_pki, outgoing, capsys):
    from datetime import timedelta

    from fedcloud_site.timeutil import utcnow

    queued = fill_queue(outgoing, 2)
    soon = test_pki.ca.host("apel.example.org", not_after=utcnow() + timedelta(hours=2)).write(tmp_path / "soon")
    other_key = test_pki.ca.host("apel.example.org").write(tmp_path / "other")
    cases = [(soon.cert, soon.key, "expires at"), (test_pki.host.cert, other_key.key, "does not match")]
    for cert, key, message in cases:
        text = ssm_yaml(tmp_path, test_pki, outgoing, brokers=[f"localhost:{free_port()}"]).read_text()
        text = text.replace(f"certificate: {test_pki.host.cert}", f"certificate: {cert}")
        text = text.replace(f"key: {test_pki.host.key}", f"key: {key}")
        config = tmp_path / "bad.yaml"
        config.write_text(text)
        assert main(["--config", str(config), "ssm", "once"]) == 1
        assert message in capsys.readouterr().err
    assert set(outgoing.names()) == set(queued)


REPO = Path(__file__).resolve().parents[2]


def _cli(config: Path) -> subprocess.Popen:
    """``fedcloud-site ssm once`` in a process of its own, on this working tree's code."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    return subprocess.Popen([sys.executable, "-m", "fedcloud_site.cli", "--config", str(config), "ssm", "once"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)


def test_sigterm_during_a_send_stops_cleanly_after_the_messages_in_flight(tmp_path, test_pki, broker, destination,
                                                                        consume, outgoing):
    queued = fill_queue(outgoing, 2500, size=3000)
    consumer = consume(broker.port, destination)
    config = ssm_yaml(tmp_path, test_pki, outgoing, brokers=[f"localhost:{broker.tls_port}"],
                      destination=destination, extra=f"  window: {WINDOW}\n")
    process = _cli(config)
    try:
        _wait_until(lambda: len(consumer.messages) > 100, timeout=60)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, output.decode()  # messages left: not a success
    received = consumer.settle(quiet=0.5)
    counts = _assert_nothing_lost(queued, [m.headers["empa-id"] for m in received], outgoing, max_duplicates=0)
    # delivered and yet still queued: only those whose receipt was on its way, at most one window
    assert len(set(counts) & set(outgoing.names())) <= WINDOW
    assert 0 < outgoing.count() < len(queued)


def test_a_killed_sender_leaves_no_lock_behind_for_the_next_run(tmp_path, test_pki, broker, destination, consume,
                                                                outgoing):
    queued = fill_queue(outgoing, 2500, size=3000)
    consumer = consume(broker.port, destination)
    config = ssm_yaml(tmp_path, test_pki, outgoing, brokers=[f"localhost:{broker.tls_port}"],
                      destination=destination, extra=f"  window: {WINDOW}\n")
    process = _cli(config)
    try:
        _wait_until(lambda: len(consumer.messages) > 100, timeout=60)
        process.kill()  # SIGKILL: no chance to unlock
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
    assert list(outgoing.path.rglob("*.lck")), "the killed run held locks"

    assert main(["--config", str(config), "ssm", "once"]) == 0  # locks recovered at once, not after 600 s

    consumer.wait_for_ids(queued)
    received = consumer.settle(quiet=0.5)
    # sent again: the unconfirmed window (+1 handed over since the last collection), and confirmed messages
    # whose deletion was still pending (at most MAX_PENDING_REMOVALS queued + 1 being deleted)
    _assert_nothing_lost(queued, [m.headers["empa-id"] for m in received], outgoing,
                         max_duplicates=WINDOW + 1 + MAX_PENDING_REMOVALS + 1)
    assert outgoing.count() == 0


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                            capture_output=True, check=False)
    return result.returncode == 0


def test_full_disk_under_the_queue_loses_nothing(tmp_path, test_pki, broker, destination, consume, capsys):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "1m"):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        queue = MessageQueue(disk / "outgoing")
        bad = queue.add("SiteName: Zürich\n".encode())
        queued = fill_queue(queue, 40, size=2000)
        filler = disk / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:  # fill the disk to the last byte
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        consumer = consume(broker.port, destination)
        config = ssm_yaml(tmp_path, test_pki, queue, brokers=[f"localhost:{broker.tls_port}"],
                          destination=destination)

        assert main(["--config", str(config), "ssm", "once"]) == 1  # the bad message could not be moved aside

        received = consumer.wait_for(len(queued))
        assert {m.headers["empa-id"] for m in received} == set(queued)
        assert list(queue.names()) == [bad]  # kept, not lost
        assert not list(queue.path.rglob("*.lck"))
        assert "cannot move an unsendable message aside" in capsys.readouterr().err
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_an_unwritable_lock_journal_does_not_stop_sending(tmp_path, test_pki, broker, destination, consume, outgoing):
    queued = fill_queue(outgoing, 5)
    consumer = consume(broker.port, destination)
    sender = _sender(tmp_path, test_pki, outgoing, broker.tls_port, destination)
    sender.journal.path.mkdir(parents=True)  # a directory where the journal file should be: every write fails

    result = sender.drain()

    assert result.error is None and result.sent == 5
    assert {m.headers["empa-id"] for m in consumer.wait_for(5)} == set(queued)


def test_a_broker_certificate_for_another_host_name_is_refused(tmp_path, test_pki, destination):
    with other_host_tls_server(tmp_path, test_pki) as port:
        transport = StompTransport([("localhost", port)], destination, tls=_tls(tmp_path, test_pki),
                                   connect_timeout=2.0)
        with pytest.raises(TransportError, match="broker certificate rejected: Hostname mismatch"):
            transport.open()
