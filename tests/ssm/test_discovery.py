"""Broker discovery in a real slapd holding GLUE 2.0 broker entries (the schema a top-BDII loads)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from ssm_helpers import fill_queue, ssm_yaml

from fedcloud_site.cli import main
from fedcloud_site.log import get_logger
from fedcloud_site.ssm.brokers import DiscoveryError, discover, resolve_brokers
from fedcloud_testing.ldap import SlapdServer, free_port, slapd_available

pytestmark = pytest.mark.services


def _service(sid: str, kind: str, network: str = "") -> str:
    other = f"GLUE2EntityOtherInfo: cluster={network}\n" if network else ""
    return (f"dn: GLUE2ServiceID={sid},o=glue\nobjectClass: GLUE2Service\nGLUE2ServiceID: {sid}\n"
            f"GLUE2ServiceType: {kind}\nGLUE2ServiceQualityLevel: production\n"
            f"GLUE2ServiceAdminDomainForeignKey: BROKER-SITE\n{other}\n")


def _endpoint(sid: str, eid: str, url: str, interface: str, network: str = "", serving: str = "production",
              health: str = "ok") -> str:
    other = f"GLUE2EntityOtherInfo: cluster={network}\n" if network else ""
    return (f"dn: GLUE2EndpointID={eid},GLUE2ServiceID={sid},o=glue\nobjectClass: GLUE2Endpoint\n"
            f"GLUE2EndpointID: {eid}\nGLUE2EndpointURL: {url}\nGLUE2EndpointInterfaceName: {interface}\n"
            f"GLUE2EndpointQualityLevel: production\nGLUE2EndpointHealthState: {health}\n"
            f"GLUE2EndpointServingState: {serving}\nGLUE2EndpointServiceForeignKey: {sid}\n{other}\n")


@pytest.fixture(scope="module")
def bdii(tmp_path_factory, broker):
    missing = slapd_available()
    if missing:
        pytest.skip(f"slapd not installed: {missing}")
    server = SlapdServer(tmp_path_factory.mktemp("bdii"), suffixes=("o=glue",)).start()
    server.add_root_entries()
    ldif = "".join([
        _service("broker-a", "msg.broker"),
        _endpoint("broker-a", "a-ssl", "stomp+ssl://mq-a.example.org:6162", "msg.broker.stomp-ssl", "PROD"),
        _endpoint("broker-a", "a-plain", "stomp://mq-a.example.org:6163", "msg.broker.stomp", "PROD"),
        _service("broker-b", "msg.broker"),
        _endpoint("broker-b", "b-ssl", "stomp+ssl://mq-b.example.org:6162", "msg.broker.stomp-ssl", "TEST-NWOB"),
        _endpoint("broker-b", "b-closed", "stomp+ssl://mq-closed.example.org:6162", "msg.broker.stomp-ssl", "PROD",
                  serving="closed"),
        _endpoint("broker-b", "b-down", "stomp+ssl://mq-down.example.org:6162", "msg.broker.stomp-ssl", "PROD",
                  health="critical"),
        # the network and type on the service, the endpoint names its own interface
        _service("broker-c", "msg.broker.stomp-ssl", "PROD"),
        _endpoint("broker-c", "c-ssl", "stomp+ssl://mq-c.example.org:6162", "STOMP"),
        # the test broker of this session, in a network of its own
        _service("local", "msg.broker"),
        _endpoint("local", "local-ssl", f"stomp+ssl://localhost:{broker.tls_port}", "msg.broker.stomp-ssl",
                  "LOCAL"),
    ])
    result = server.ldapadd(ldif)
    assert result.returncode == 0, result.stderr.decode()
    yield server
    server.stop()


def test_only_endpoints_of_the_network_and_type_that_are_in_service_are_found(bdii):
    assert discover(bdii.url, "PROD") == [("mq-a.example.org", 6162), ("mq-c.example.org", 6162)]
    assert discover(bdii.url, "TEST-NWOB") == [("mq-b.example.org", 6162)]
    assert discover(bdii.url, "PROD", use_ssl=False) == [("mq-a.example.org", 6163)]
    assert discover(bdii.url, "NOWHERE") == []


def _settings(bdii_url: str, network: str = "PROD") -> SimpleNamespace:
    return SimpleNamespace(brokers=[], bdii=bdii_url, network=network, use_ssl=True, bdii_timeout=5)


def test_the_last_good_list_is_used_when_the_bdii_is_down(bdii, tmp_path, caplog):
    log = get_logger("ssm-test")
    assert resolve_brokers(_settings(bdii.url), tmp_path, log) == [("mq-a.example.org", 6162),
                                                                  ("mq-c.example.org", 6162)]
    dead = f"ldap://127.0.0.1:{free_port()}"

    assert resolve_brokers(_settings(dead), tmp_path, log) == [("mq-a.example.org", 6162),
                                                               ("mq-c.example.org", 6162)]
    assert "using the last known brokers" in caplog.text
    with pytest.raises(DiscoveryError):
        resolve_brokers(_settings(dead), tmp_path / "empty", log)


def test_a_network_without_brokers_is_an_error_not_an_empty_list(bdii, tmp_path):
    with pytest.raises(DiscoveryError, match="no msg.broker.stomp-ssl endpoint for network NOWHERE"):
        resolve_brokers(_settings(bdii.url, "NOWHERE"), tmp_path, get_logger("ssm-test"))


def test_messages_reach_a_broker_discovered_in_the_bdii(tmp_path, test_pki, broker, bdii, destination, consume,
                                                        outgoing):
    queued = fill_queue(outgoing, 5)
    consumer = consume(broker.port, destination)
    config = ssm_yaml(tmp_path, test_pki, outgoing, brokers=[], destination=destination,
                      extra=f"  bdii: {bdii.url}\n  network: LOCAL\n")

    assert main(["--config", str(config), "ssm", "once"]) == 0

    assert {m.headers["empa-id"] for m in consumer.wait_for(5)} == set(queued)
    assert (tmp_path / "ssm-state" / "brokers.json").exists()


def test_a_bdii_that_does_not_answer_is_waited_for_once_per_run_not_once_per_queue(tmp_path, test_pki, outgoing,
                                                                                    capsys):
    import json
    import socket
    import threading

    from fedcloud_site.queue import MessageQueue

    listener = socket.create_server(("127.0.0.1", 0))  # accepts LDAP connections, never answers
    accepted = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    storage = MessageQueue(tmp_path / "outgoing-storage")
    fill_queue(outgoing, 2)
    fill_queue(storage, 2)
    config = ssm_yaml(tmp_path, test_pki, outgoing, brokers=[], storage_queue_dir=storage.path,
                      extra=f"  bdii: ldap://127.0.0.1:{listener.getsockname()[1]}\n  bdii_timeout: 1s\n")
    try:
        assert main(["--config", str(config), "ssm", "once"]) == 1
    finally:
        listener.close()
        for connection in accepted:
            connection.close()

    assert len(accepted) == 1
    capsys.readouterr()
    assert main(["--config", str(config), "ssm", "status", "--json"]) == 0
    queues = json.loads(capsys.readouterr().out)["queues"]
    assert [q["messages"] for q in queues] == [2, 2]
    assert all("BDII" in q["last_run"]["error"] for q in queues)
