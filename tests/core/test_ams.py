"""The AMS publisher (fedcloud_site.ams) against the HTTPS AMS simulator, through requests."""

from __future__ import annotations

import base64
import json

import pytest

from fedcloud_site.ams import AmsAuthError, AmsClient, AmsError, AmsMessage, AmsUnavailable, MessageTooLarge
from fedcloud_site.demo import ca as pki
from fedcloud_site.demo.ams import AmsSimulator
from fedcloud_site.demo.http import Fault


@pytest.fixture(scope="module")
def creds(tmp_path_factory):
    root = tmp_path_factory.mktemp("ams-pki")
    ca = pki.CertificateAuthority("/DC=org/DC=example/CN=AMS Test CA")
    ca_file = ca.write_cert(root / "ca.pem")
    server = ca.server().write(root / "server", "cert.pem", "key.pem")
    host = ca.host("apel.example.org")
    return {"ca": ca_file, "server": server, "host": host.write(root / "host"), "host_dn": host.dn,
            "stranger": ca.host("stranger.example.org").write(root / "stranger")}


@pytest.fixture
def ams(creds):
    sim = AmsSimulator(creds["server"].cert, creds["server"].key, client_ca_file=creds["ca"]).start()
    sim.add_topic("accounting", "eu-egi-cloud-accounting")
    sim.add_token("s3cret", "accounting")
    sim.add_token("other-project", "elsewhere")
    sim.add_certificate(creds["host_dn"], "s3cret")
    yield sim
    sim.stop()


def client(ams, creds, **options) -> AmsClient:
    options.setdefault("token", "s3cret")
    return AmsClient("127.0.0.1", "accounting", port=ams.port, verify=str(creds["ca"]), backoff=0.01,
                     auth_url=f"{ams.url}/v1/service-types/ams/hosts/127.0.0.1:authx509", **options)


def test_publish_returns_one_id_per_message_and_ams_gets_base64_data_and_attributes(ams, creds):
    messages = [AmsMessage(f"payload {i}\n".encode(), {"empaid": f"0000000{i}/x"}) for i in range(3)]

    ids = client(ams, creds).publish("eu-egi-cloud-accounting", messages)

    stored = ams.messages("accounting", "eu-egi-cloud-accounting")
    assert ids == [m.id for m in stored]
    assert [m.data for m in stored] == [m.data for m in messages]
    assert [m.attributes for m in stored] == [m.attributes for m in messages]


def test_the_wire_format_is_ams_json_with_the_token_header(ams, creds):
    seen = {}
    original = ams.server.dispatch

    def spy(method, path, headers, body, *args, **kwargs):
        seen.update(headers=dict(headers), body=body, path=path)
        return original(method, path, headers, body, *args, **kwargs)

    ams.server.dispatch = spy  # type: ignore[method-assign]
    client(ams, creds).publish("eu-egi-cloud-accounting", [AmsMessage(b"abc", {"empaid": "1/2"})])

    assert seen["path"] == "/v1/projects/accounting/topics/eu-egi-cloud-accounting:publish"
    assert {k.lower(): v for k, v in seen["headers"].items()}["x-api-key"] == "s3cret"
    assert json.loads(seen["body"]) == {"messages": [{"attributes": {"empaid": "1/2"},
                                                      "data": base64.b64encode(b"abc").decode()}]}


def test_certificate_is_exchanged_for_a_token(ams, creds):
    ams_client = client(ams, creds, token=None, cert=str(creds["host"].cert), key=str(creds["host"].key))

    ams_client.publish("eu-egi-cloud-accounting", [AmsMessage(b"x")])

    assert ams_client.token == "s3cret"
    assert ams.server.requests["authx509"] == 1


def test_unknown_certificate_and_bad_tokens_are_auth_errors(ams, creds):
    stranger = client(ams, creds, token=None, cert=str(creds["stranger"].cert), key=str(creds["stranger"].key))
    with pytest.raises(AmsAuthError, match="403"):
        stranger.publish("eu-egi-cloud-accounting", [AmsMessage(b"x")])
    with pytest.raises(AmsAuthError, match="401"):
        client(ams, creds, token="wrong").publish("eu-egi-cloud-accounting", [AmsMessage(b"x")])
    with pytest.raises(AmsAuthError, match="403"):
        client(ams, creds, token="other-project").publish("eu-egi-cloud-accounting", [AmsMessage(b"x")])


def test_unknown_topic_is_a_plain_error(ams, creds):
    with pytest.raises(AmsError, match="404") as info:
        client(ams, creds).publish("no-such-topic", [AmsMessage(b"x")])
    assert not isinstance(info.value, (AmsAuthError, AmsUnavailable))


def test_batches_stay_under_the_size_limit(ams, creds):
    ams.state.max_request_bytes = 5000
    messages = [AmsMessage(b"r" * 1000, {"empaid": str(i)}) for i in range(12)]

    ids = client(ams, creds, max_request_bytes=5000).publish("eu-egi-cloud-accounting", messages)

    assert len(ids) == 12
    assert ams.server.requests["publish"] == 4  # 3 messages (~1.4 kB each base64) per request
    assert [m.attributes["empaid"] for m in ams.messages("accounting", "eu-egi-cloud-accounting")] == \
        [str(i) for i in range(12)]


def test_a_single_oversized_message_is_named_and_nothing_is_sent(ams, creds):
    messages = [AmsMessage(b"ok"), AmsMessage(b"x" * 4000, {"empaid": "big/one"}), AmsMessage(b"ok")]

    with pytest.raises(MessageTooLarge, match="empaid=big/one") as info:
        client(ams, creds, max_request_bytes=3000).publish("eu-egi-cloud-accounting", messages)

    assert info.value.index == 1
    assert ams.server.requests["publish"] == 0


def test_a_lower_service_limit_splits_batches_until_the_offender_is_alone(ams, creds):
    ams.state.max_message_bytes = 2000  # the service refuses any message whose data exceeds 2000 bytes
    messages = [AmsMessage(b"a" * 100, {"empaid": "1"}), AmsMessage(b"b" * 3000, {"empaid": "2"}),
                AmsMessage(b"c" * 100, {"empaid": "3"}), AmsMessage(b"d" * 100, {"empaid": "4"})]
    ams_client = client(ams, creds)

    with pytest.raises(MessageTooLarge, match="empaid=2.*HTTP 413"):
        ams_client.publish("eu-egi-cloud-accounting", messages)
    assert [m.attributes["empaid"] for m in ams.messages("accounting", "eu-egi-cloud-accounting")] == ["1"]


def test_server_errors_and_dropped_connections_are_retried(ams, creds):
    ams.server.inject(Fault(kind="status", route="publish", status=503, count=1))
    ams.server.inject(Fault(kind="drop", route="publish", count=1))
    ams_client = client(ams, creds, retries=2)

    ids = ams_client.publish("eu-egi-cloud-accounting", [AmsMessage(b"x", {"empaid": "1"})])

    assert len(ids) == 1
    assert ams_client.retried_messages == 2
    assert len(ams.messages("accounting", "eu-egi-cloud-accounting")) == 1


def test_persistent_server_errors_end_as_unavailable(ams, creds):
    ams.server.inject(Fault(kind="status", route="publish", status=502, count=5))
    with pytest.raises(AmsUnavailable, match="502"):
        client(ams, creds, retries=1).publish("eu-egi-cloud-accounting", [AmsMessage(b"x")])


def test_unreachable_service_is_unavailable(creds):
    from fedcloud_testing.ldap import free_port

    ams_client = AmsClient("127.0.0.1", "accounting", port=free_port(), token="t", verify=str(creds["ca"]),
                           retries=0, timeout=2)
    with pytest.raises(AmsUnavailable):
        ams_client.publish("topic", [AmsMessage(b"x")])


def test_a_service_certificate_from_an_unknown_ca_is_refused(ams, tmp_path):
    other = pki.CertificateAuthority("/DC=org/DC=other/CN=Other CA").write_cert(tmp_path / "other.pem")
    ams_client = AmsClient("127.0.0.1", "accounting", port=ams.port, token="s3cret", verify=str(other), retries=0)
    with pytest.raises(AmsUnavailable, match="certificate"):
        ams_client.publish("eu-egi-cloud-accounting", [AmsMessage(b"x")])


def test_a_failure_reports_what_was_published_before_it(ams, creds):
    ams.state.max_message_bytes = 2000
    messages = [AmsMessage(b"a" * 100), AmsMessage(b"b" * 100), AmsMessage(b"c" * 3000), AmsMessage(b"d" * 100)]

    with pytest.raises(MessageTooLarge) as info:
        client(ams, creds).publish("eu-egi-cloud-accounting", messages)

    assert info.value.index == 2
    assert info.value.published == [m.id for m in ams.messages("accounting", "eu-egi-cloud-accounting")]
    assert len(info.value.published) == 2
