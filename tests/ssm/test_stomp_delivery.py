"""Delivery to a real ActiveMQ over STOMP (TLS and plain), checked by a consumer that verifies like APEL."""

from __future__ import annotations

from pathlib import Path

import pytest
from ssm_helpers import apel_receive, fill_queue, ssm_yaml

from fedcloud_site import smime
from fedcloud_site.cli import main
from fedcloud_site.queue import MessageQueue

pytestmark = pytest.mark.services


def test_every_queued_message_arrives_signed_verifiable_and_unchanged_then_leaves_the_queue(
        tmp_path, test_pki, broker, destination, consume, outgoing, capsys):
    queued = fill_queue(outgoing, 25)
    consumer = consume(broker.port, destination)
    config = ssm_yaml(tmp_path, test_pki, outgoing, brokers=[f"localhost:{broker.tls_port}"],
                      destination=destination)

    assert main(["--config", str(config), "ssm", "once"]) == 0

    received = consumer.wait_for(len(queued))
    assert len(consumer.settle(quiet=0.3)) == len(queued)  # no duplicates
    by_id = {m.headers["empa-id"]: m for m in received}
    assert set(by_id) == set(queued)
    for msgid, message in by_id.items():
        payload, signer = apel_receive(message.body, test_pki.capath)
        assert payload == queued[msgid]
        assert signer == test_pki.host_dn
        assert message.headers["destination"] == destination
        assert message.headers["persistent"] == "true"
    assert outgoing.count() == 0
    # messages leave the queue in the order they were added
    assert [m.headers["empa-id"] for m in received] == sorted(queued)
    summary = next(line for line in capsys.readouterr().err.splitlines() if "run summary" in line)
    for field in ("status='ok'", "sent=25", "failed=0", "remaining=0", f"bytes={sum(map(len, queued.values()))}",
                  "duration="):
        assert field in summary


def test_plain_stomp_1_1_without_tls_delivers_too(tmp_path, test_pki, broker, destination, consume, outgoing):
    queued = fill_queue(outgoing, 5)
    consumer = consume(broker.port, destination)
    config = ssm_yaml(tmp_path, test_pki, outgoing, brokers=[f"127.0.0.1:{broker.port}"], destination=destination,
                      use_ssl=False, extra="  stomp_version: \"1.1\"\n")

    assert main(["--config", str(config), "ssm", "once"]) == 0

    assert {m.headers["empa-id"] for m in consumer.wait_for(5)} == set(queued)


@pytest.mark.skipif(smime.encryption_problem() is not None, reason=str(smime.encryption_problem()))
def test_encrypted_messages_are_readable_only_with_the_receivers_key(tmp_path, test_pki, broker, destination,
                                                                       consume, outgoing):
    queued = fill_queue(outgoing, 3)
    consumer = consume(broker.port, destination)
    config = ssm_yaml(tmp_path, test_pki, outgoing, brokers=[f"localhost:{broker.tls_port}"],
                      destination=destination, extra=f"  server_cert: {test_pki.server.cert}\n")

    assert main(["--config", str(config), "ssm", "once"]) == 0

    for message in consumer.wait_for(3):
        assert b"application/x-pkcs7-mime; smime-type=enveloped-data" in message.body
        assert b"APEL-cloud-message" not in message.body
        payload, _ = apel_receive(message.body, test_pki.capath, server=test_pki.server)
        assert payload == queued[message.headers["empa-id"]]


def test_unsendable_entries_are_moved_aside_with_the_reason_and_the_rest_is_sent(
        tmp_path, test_pki, broker, destination, consume, outgoing):
    good = fill_queue(outgoing, 3)
    not_ascii = outgoing.add("APEL-cloud-message: v0.4\nSiteName: Zürich\n%%\n".encode())
    empty = outgoing.add(b"   \n")
    good.update(fill_queue(outgoing, 2))
    consumer = consume(broker.port, destination)
    config = ssm_yaml(tmp_path, test_pki, outgoing, brokers=[f"localhost:{broker.tls_port}"],
                      destination=destination)

    assert main(["--config", str(config), "ssm", "once"]) == 0

    assert {m.headers["empa-id"] for m in consumer.wait_for(len(good))} == set(good)
    assert outgoing.count() == 0
    reject = outgoing.path.with_name("outgoing.reject")
    reason = (reject / (not_ascii.replace("/", "-") + ".reason")).read_text()
    assert "not ASCII: byte 0xc3" in reason
    assert (reject / not_ascii.replace("/", "-")).read_bytes().endswith("Zürich\n%%\n".encode())
    assert "empty message" in (reject / (empty.replace("/", "-") + ".reason")).read_text()


def test_broker_down_at_start_keeps_every_message_unlocked_and_exits_1(tmp_path, test_pki, outgoing):
    from fedcloud_testing.ldap import free_port

    queued = fill_queue(outgoing, 4)
    config = ssm_yaml(tmp_path, test_pki, outgoing, brokers=[f"localhost:{free_port()}"])

    assert main(["--config", str(config), "ssm", "once"]) == 1

    assert set(outgoing.names()) == set(queued)
    assert not list(outgoing.path.rglob("*.lck"))


def test_failover_uses_the_next_broker_when_the_first_is_down(tmp_path, test_pki, broker, destination, consume,
                                                              outgoing):
    from fedcloud_testing.ldap import free_port

    queued = fill_queue(outgoing, 4)
    consumer = consume(broker.port, destination)
    config = ssm_yaml(tmp_path, test_pki, outgoing, destination=destination,
                      brokers=[f"localhost:{free_port()}", f"localhost:{broker.tls_port}"])

    assert main(["--config", str(config), "ssm", "once"]) == 0

    assert {m.headers["empa-id"] for m in consumer.wait_for(4)} == set(queued)


def test_an_empty_queue_needs_no_broker(tmp_path, test_pki, outgoing):
    from fedcloud_testing.ldap import free_port

    config = ssm_yaml(tmp_path, test_pki, outgoing, brokers=[f"localhost:{free_port()}"])

    assert main(["--config", str(config), "ssm", "once"]) == 0


def test_a_second_queue_reader_is_not_disturbed(tmp_path, test_pki, broker, destination, consume, outgoing):
    """Elements locked by another program (apel's ssmsend) are left alone and reported as left over."""
    queued = fill_queue(outgoing, 3)
    other = MessageQueue(outgoing.path)
    held = sorted(queued)[1]
    assert other.lock(held)
    consumer = consume(broker.port, destination)
    config = ssm_yaml(tmp_path, test_pki, outgoing, brokers=[f"localhost:{broker.tls_port}"],
                      destination=destination)

    assert main(["--config", str(config), "ssm", "once"]) == 1  # one message left unsent

    assert {m.headers["empa-id"] for m in consumer.wait_for(2)} == set(queued) - {held}
    assert list(outgoing.names()) == [held]
    assert Path(outgoing.path, held + ".lck").exists()


def test_status_shows_queue_depth_oldest_message_rejects_and_last_run(tmp_path, test_pki, broker, outgoing, capsys):
    import json

    from fedcloud_testing.ldap import free_port

    fill_queue(outgoing, 3)
    outgoing.add(b"\xff not ascii")
    config = ssm_yaml(tmp_path, test_pki, outgoing, brokers=[f"localhost:{free_port()}"])
    assert main(["--config", str(config), "ssm", "once"]) == 1  # broker down: all stay
    capsys.readouterr()

    assert main(["--config", str(config), "ssm", "status", "--json"]) == 0

    status = json.loads(capsys.readouterr().out)
    assert status["messages"] == 4 and status["locked"] == 0 and status["rejected"] == 0
    assert status["oldest_age_s"] is not None and status["oldest_age_s"] < 120
    assert "no broker reachable" in status["last_run"]["error"]
    assert main(["--config", str(config), "ssm", "status"]) == 0
    assert "unsent:    4 messages" in capsys.readouterr().out


def test_the_daemon_sends_new_messages_as_soon_as_they_appear(tmp_path, test_pki, broker, destination, consume,
                                                             outgoing):
    import threading
    import time

    from fedcloud_site.runner import Runner

    storage = tmp_path / "outgoing-storage"  # created by the extractor only once it has storage records
    consumer = consume(broker.port, destination)
    storage_consumer = consume(broker.port, destination + ".storage")
    config = ssm_yaml(tmp_path, test_pki, outgoing, brokers=[f"localhost:{broker.tls_port}"],
                      destination=destination, storage_queue_dir=storage,
                      extra=f"  interval: 1h\n  watch_interval: 0.2\n  storage_destination: {destination}.storage\n")
    runner = Runner("ssm", config, options={"action": "run"})
    thread = threading.Thread(target=runner.run_forever, kwargs={"install_signals": False}, daemon=True)
    thread.start()
    try:
        time.sleep(0.5)  # the first drain found nothing
        queued = fill_queue(outgoing, 3)
        started = time.monotonic()
        assert {m.headers["empa-id"] for m in consumer.wait_for(3, timeout=10)} == set(queued)
        assert time.monotonic() - started < 5  # not at the next scheduled run, an hour later
        storage_queued = fill_queue(MessageQueue(storage), 2)
        assert {m.headers["empa-id"] for m in storage_consumer.wait_for(2, timeout=10)} == set(storage_queued)
    finally:
        runner.stop.set()
        runner._wake.set()
        thread.join(30)
    assert not thread.is_alive()
    assert outgoing.count() == 0 and MessageQueue(storage).count() == 0


def test_a_lock_another_program_left_long_ago_is_broken(tmp_path, test_pki, broker, destination, consume, outgoing):
    import os
    import time

    queued = fill_queue(outgoing, 2)
    stale = sorted(queued)[0]
    assert MessageQueue(outgoing.path).lock(stale)
    old = time.time() - 3600
    os.utime(outgoing.path / stale, (old, old))  # the lock link shares the element's inode
    consumer = consume(broker.port, destination)
    config = ssm_yaml(tmp_path, test_pki, outgoing, brokers=[f"localhost:{broker.tls_port}"],
                      destination=destination, extra="  stale_lock: 10m\n")

    assert main(["--config", str(config), "ssm", "once"]) == 0

    assert {m.headers["empa-id"] for m in consumer.wait_for(2)} == set(queued)


def test_parallel_connections_deliver_everything_once(tmp_path, test_pki, broker, destination, consume, outgoing):
    queued = fill_queue(outgoing, 60)
    consumer = consume(broker.port, destination)
    config = ssm_yaml(tmp_path, test_pki, outgoing, brokers=[f"localhost:{broker.tls_port}"],
                      destination=destination, extra="  connections: 3\n  window: 5\n")

    assert main(["--config", str(config), "ssm", "once"]) == 0

    consumer.wait_for(60)
    received = [m.headers["empa-id"] for m in consumer.settle(quiet=0.3)]
    assert sorted(received) == sorted(queued)  # all, each once (the order may interleave)


def test_a_pool_keeps_sending_on_the_connections_that_work(tmp_path, test_pki, broker, destination, consume,
                                                           outgoing):
    from fedcloud_site.log import get_logger
    from fedcloud_site.ssm.pool import PooledTransport
    from fedcloud_site.ssm.sender import InflightJournal, Sender
    from fedcloud_site.ssm.signing import ca_bundle, load_signer
    from fedcloud_site.ssm.stomp_transport import StompTransport, TlsFiles
    from fedcloud_testing.ldap import free_port

    queued = fill_queue(outgoing, 20)
    consumer = consume(broker.port, destination)
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(ca_bundle(test_pki.capath))
    tls = TlsFiles(test_pki.host.cert, test_pki.host.key, bundle)
    log = get_logger("ssm-test")
    pool = PooledTransport([StompTransport([("localhost", free_port())], destination, tls=tls, log=log),
                            StompTransport([("localhost", broker.tls_port)], destination, tls=tls, log=log)], log)
    signer = load_signer(test_pki.host.cert, test_pki.host.key)

    result = Sender(outgoing, signer, pool, journal=InflightJournal(tmp_path / "j", log), log=log).drain()

    assert result.error is None and result.sent == 20
    assert {m.headers["empa-id"] for m in consumer.wait_for(20)} == set(queued)


def test_storage_records_go_to_the_storage_destination_and_cloud_records_to_theirs(
        tmp_path, test_pki, broker, destination, consume, outgoing, capsys):
    import json

    storage = MessageQueue(tmp_path / "outgoing-storage")
    cloud_queued = fill_queue(outgoing, 4)
    storage_queued = fill_queue(storage, 3)
    storage_destination = destination + ".storage"
    cloud_consumer = consume(broker.port, destination)
    storage_consumer = consume(broker.port, storage_destination)
    config = ssm_yaml(tmp_path, test_pki, outgoing, brokers=[f"localhost:{broker.tls_port}"],
                      destination=destination, storage_queue_dir=storage.path,
                      extra=f'  storage_destination: "{storage_destination}"\n')

    assert main(["--config", str(config), "ssm", "once"]) == 0

    for consumer, queued in ((cloud_consumer, cloud_queued), (storage_consumer, storage_queued)):
        consumer.wait_for(len(queued))
        received = consumer.settle(quiet=0.3)
        assert sorted(m.headers["empa-id"] for m in received) == sorted(queued)  # these, once each, nothing else
        for message in received:
            assert apel_receive(message.body, test_pki.capath)[0] == queued[message.headers["empa-id"]]
    assert outgoing.count() == 0 and storage.count() == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "queue summary" in line]
    assert len(lines) == 2
    cloud_line, storage_line = sorted(lines, key=lambda line: "queue='storage'" in line)
    assert "queue='cloud'" in cloud_line and "sent=4" in cloud_line and f"destination='{destination}'" in cloud_line
    assert "sent=3" in storage_line and f"destination='{storage_destination}'" in storage_line

    assert main(["--config", str(config), "ssm", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert [(q["name"], q["destination"], q["last_run"]["sent"]) for q in status["queues"]] == [
        ("cloud", destination, 4), ("storage", storage_destination, 3)]
    assert status["last_run"]["sent"] == 7
    assert main(["--config", str(config), "ssm", "status"]) == 0
    text = capsys.readouterr().out
    assert f"queue storage: {storage.path} (stomp -> {storage_destination})" in text
    assert text.count("last run:  ") == 2 and "sent 3, failed 0" in text


def test_a_broken_queue_does_not_keep_the_next_one_from_being_sent(tmp_path, test_pki, broker, destination, consume,
                                                                  outgoing, capsys):
    import json

    storage = MessageQueue(tmp_path / "outgoing-storage")
    storage_queued = fill_queue(storage, 3)
    queued = fill_queue(outgoing, 2)
    consumer = consume(broker.port, destination)
    # the broker answers every message to the cloud destination with an ERROR (no such temporary queue)
    config = ssm_yaml(tmp_path, test_pki, outgoing, brokers=[f"localhost:{broker.tls_port}"],
                      destination="/remote-temp-queue/gone", storage_queue_dir=storage.path,
                      extra=f'  storage_destination: "{destination}"\n  reconnects: 1\n')

    assert main(["--config", str(config), "ssm", "once"]) == 1

    assert {m.headers["empa-id"] for m in consumer.wait_for(3)} == set(storage_queued)
    assert storage.count() == 0
    assert set(outgoing.names()) == set(queued) and not list(outgoing.path.rglob("*.lck"))
    capsys.readouterr()
    assert main(["--config", str(config), "ssm", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["last_run"]["error"].startswith("cloud: ") and "ERROR" in status["last_run"]["error"]
    cloud, stored = status["queues"]
    assert cloud["messages"] == 2 and cloud["last_run"]["error"]
    assert stored["last_run"]["error"] is None and stored["last_run"]["sent"] == 3


def test_a_storage_queue_nobody_created_yet_is_nothing_to_send(tmp_path, test_pki, broker, destination, outgoing):
    queued = fill_queue(outgoing, 2)
    missing = tmp_path / "no-storage-yet"
    config = ssm_yaml(tmp_path, test_pki, outgoing, brokers=[f"localhost:{broker.tls_port}"],
                      destination=destination, storage_queue_dir=missing)

    assert main(["--config", str(config), "ssm", "once"]) == 0

    assert outgoing.count() == 0 and len(queued) == 2
    assert not missing.exists()  # not created by the sender
