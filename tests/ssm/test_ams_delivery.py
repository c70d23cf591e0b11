"""Delivery to ARGO AMS (the HTTPS AMS simulator, driven through requests) by ``fedcloud-site ssm once``."""

from __future__ import annotations

import json

import pytest
from ssm_helpers import apel_receive, fill_queue, ssm_yaml

from fedcloud_site.cli import main
from fedcloud_site.demo.ams import AmsSimulator
from fedcloud_site.demo.http import Fault
from fedcloud_site.queue import MessageQueue

TOPIC = "eu-egi-cloud-accounting"
STORAGE_TOPIC = "eu-egi-storage-accounting"


@pytest.fixture
def ams(test_pki):
    sim = AmsSimulator(test_pki.broker.cert, test_pki.broker.key, client_ca_file=test_pki.ca_file).start()
    sim.add_topic("accounting", TOPIC)
    sim.add_token("s3cret", "accounting")
    sim.add_certificate(test_pki.host_dn, "from-cert")
    sim.add_token("from-cert", "accounting")
    yield sim
    sim.stop()


def ams_config(tmp_path, test_pki, queue, ams, token="s3cret", extra=""):
    token_line = f"    token: {token}\n" if token else (
        f"    auth_url: {ams.url}/v1/service-types/ams/hosts/127.0.0.1:authx509\n")
    return ssm_yaml(tmp_path, test_pki, queue, destination=TOPIC, extra=(
        "  transport: ams\n"
        "  ams:\n"
        "    host: 127.0.0.1\n"
        f"    port: {ams.port}\n"
        "    project: accounting\n"
        "    retries: 0\n"
        f"{token_line}{extra}"))


def test_every_message_is_published_signed_with_its_empaid_and_leaves_the_queue(tmp_path, test_pki, ams, outgoing):
    queued = fill_queue(outgoing, 60)
    config = ams_config(tmp_path, test_pki, outgoing, ams, extra="    batch_size: 25\n")

    assert main(["--config", str(config), "ssm", "once"]) == 0

    published = ams.messages("accounting", TOPIC)
    assert [m.attributes["empaid"] for m in published] == sorted(queued)
    for message in published:
        payload, signer = apel_receive(message.data, test_pki.capath)
        assert payload == queued[message.attributes["empaid"]]
        assert signer == test_pki.host_dn
    assert ams.server.requests["publish"] == 3  # batches of 25, not one request per message
    assert outgoing.count() == 0


def test_the_host_certificate_is_exchanged_for_a_token(tmp_path, test_pki, ams, outgoing):
    queued = fill_queue(outgoing, 3)

    assert main(["--config", str(ams_config(tmp_path, test_pki, outgoing, ams, token=None)), "ssm", "once"]) == 0

    assert ams.server.requests["authx509"] == 1
    assert {m.attributes["empaid"] for m in ams.messages("accounting", TOPIC)} == set(queued)


def test_a_message_over_the_ams_limit_is_moved_aside_and_the_others_go(tmp_path, test_pki, ams, outgoing, capsys):
    small = fill_queue(outgoing, 2, size=1000)
    big = next(iter(fill_queue(outgoing, 1, size=30000)))
    small.update(fill_queue(outgoing, 2, size=1000))
    config = ams_config(tmp_path, test_pki, outgoing, ams, extra="    max_request_bytes: 20000\n")

    assert main(["--config", str(config), "ssm", "once"]) == 0

    assert {m.attributes["empaid"] for m in ams.messages("accounting", TOPIC)} == set(small)
    reason = outgoing.path.with_name("outgoing.reject") / (big.replace("/", "-") + ".reason")
    assert "over the AMS limit of 20000 bytes" in reason.read_text()
    assert "message moved aside" in capsys.readouterr().err
    assert outgoing.count() == 0


def test_a_lower_limit_on_the_service_side_is_handled_too(tmp_path, test_pki, ams, outgoing):
    small = fill_queue(outgoing, 3, size=1000)
    big = next(iter(fill_queue(outgoing, 1, size=30000)))
    small.update(fill_queue(outgoing, 3, size=1000))
    ams.state.max_message_bytes = 20000

    assert main(["--config", str(ams_config(tmp_path, test_pki, outgoing, ams)), "ssm", "once"]) == 0

    assert {m.attributes["empaid"] for m in ams.messages("accounting", TOPIC)} == set(small)
    assert (outgoing.path.with_name("outgoing.reject") / big.replace("/", "-")).exists()


@pytest.mark.parametrize("fault, message", [
    (Fault(kind="status", route="publish", status=503, count=10), "503"),
    (Fault(kind="drop", route="publish", count=10), "failed"),
])
def test_service_failures_keep_every_message_for_the_next_run(tmp_path, test_pki, ams, outgoing, capsys, fault,
                                                              message):
    queued = fill_queue(outgoing, 5)
    ams.server.inject(fault)

    assert main(["--config", str(ams_config(tmp_path, test_pki, outgoing, ams)), "ssm", "once"]) == 1

    assert message in capsys.readouterr().err
    assert set(outgoing.names()) == set(queued)
    assert not list(outgoing.path.rglob("*.lck"))
    ams.server.clear_faults()
    assert main(["--config", str(ams_config(tmp_path, test_pki, outgoing, ams)), "ssm", "once"]) == 0
    assert {m.attributes["empaid"] for m in ams.messages("accounting", TOPIC)} == set(queued)


def test_a_refused_token_keeps_the_messages_and_says_so(tmp_path, test_pki, ams, outgoing, capsys):
    queued = fill_queue(outgoing, 2)

    assert main(["--config", str(ams_config(tmp_path, test_pki, outgoing, ams, token="wrong")), "ssm", "once"]) == 1

    assert "401" in capsys.readouterr().err
    assert set(outgoing.names()) == set(queued)


def test_storage_records_are_published_to_the_storage_topic(tmp_path, test_pki, ams, outgoing, capsys):
    from fedcloud_site.queue import MessageQueue

    storage = MessageQueue(tmp_path / "outgoing-storage")
    cloud_queued = fill_queue(outgoing, 3)
    storage_queued = fill_queue(storage, 2)
    text = ams_config(tmp_path, test_pki, outgoing, ams).read_text()
    config = tmp_path / "two-queues.yaml"
    config.write_text(text.replace("accounting:\n", f"accounting:\n  storage_queue_dir: {storage.path}\n", 1))

    # the storage topic does not exist yet: the cloud records go, the storage records wait
    assert main(["--config", str(config), "ssm", "once"]) == 1

    assert {m.attributes["empaid"] for m in ams.messages("accounting", TOPIC)} == set(cloud_queued)
    assert outgoing.count() == 0 and set(storage.names()) == set(storage_queued)
    assert "storage: " in capsys.readouterr().err

    ams.add_topic("accounting", STORAGE_TOPIC)
    assert main(["--config", str(config), "ssm", "once"]) == 0

    published = ams.messages("accounting", STORAGE_TOPIC)
    assert [m.attributes["empaid"] for m in published] == sorted(storage_queued)
    for message in published:
        assert apel_receive(message.data, test_pki.capath)[0] == storage_queued[message.attributes["empaid"]]
    assert len(ams.messages("accounting", TOPIC)) == 3 and storage.count() == 0


def read_unlocked(queue: MessageQueue, name: str) -> bytes:
    assert queue.lock(name)
    try:
        return queue.get(name)
    finally:
        queue.unlock(name)


def message_type(body: bytes) -> str:
    """The APEL message type: the header's name, or a JSON message's Type."""
    if body.startswith(b"{"):
        return str(json.loads(body)["Type"])
    return body.decode("ascii").split(":", 1)[0]


def test_a_json_record_destination_that_refuses_never_holds_up_the_cloud_records(tmp_path, test_pki, ams, outgoing,
                                                                                capsys):
    """IP and accelerator records are extracted into queues of their own and each is delivered to its own
    topic: the IP topic does not exist (the AMS answers 404), yet every cloud and accelerator message goes."""
    ams.add_topic("accounting", "gpu-records")
    ip_queue, gpu_queue = tmp_path / "outgoing-ip", tmp_path / "outgoing-gpu"
    text = ams_config(tmp_path, test_pki, outgoing, ams).read_text()
    config = tmp_path / "json-queues.yaml"
    config.write_text(text.replace("accounting:\n", f"""vos:
  biomed: {{projects: [biomed-cloud]}}
accounting:
  ignore_projects: [admin]
  first_run_start: 2026-11-01
  record_types: [cloud, ip, accelerator]
  ip: {{queue_dir: {ip_queue}, destination: ip-records}}
  accelerator: {{queue_dir: {gpu_queue}, destination: gpu-records}}
""", 1))
    assert main(["--config", str(config), "accounting", "once"]) == 0
    queues = {name: MessageQueue(path) for name, path in
              (("cloud", outgoing.path), ("ip", ip_queue), ("accelerator", gpu_queue))}
    queued = {name: {n: read_unlocked(q, n) for n in q.names()} for name, q in queues.items()}
    kinds = {name: {message_type(body) for body in bodies.values()} for name, bodies in queued.items()}
    assert kinds == {"cloud": {"APEL-cloud-message"}, "ip": {"APEL Public IP message"},
                     "accelerator": {"APEL-accelerator-message"}}

    assert main(["--config", str(config), "ssm", "once"]) == 1  # the IP queue could not be delivered

    assert "ip: " in capsys.readouterr().err
    for name, topic in (("cloud", TOPIC), ("accelerator", "gpu-records")):
        published = ams.messages("accounting", topic)
        assert {m.attributes["empaid"] for m in published} == set(queued[name]), name
        for message in published:
            assert apel_receive(message.data, test_pki.capath)[0] == queued[name][message.attributes["empaid"]]
        assert queues[name].count() == 0
    assert set(queues["ip"].names()) == set(queued["ip"])  # kept for when a server takes them
