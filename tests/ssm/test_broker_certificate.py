"""The broker's certificate after the TLS handshake: revoked (CRL of the CA directory), expired CRL, host name.

A real ActiveMQ presents a certificate from a key store the test made; the CA
directory the sender trusts either lists that certificate in its CRL or not.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from cryptography import x509 as cx509
from ssm_helpers import apel_receive, fill_queue, ssm_yaml

from fedcloud_site.cli import main
from fedcloud_site.demo import ca as pki
from fedcloud_site.ssm.peer import BrokerCertificateError, check_hostname
from fedcloud_site.timeutil import utcnow

pytestmark = pytest.mark.services


def test_a_revoked_broker_certificate_is_refused_and_nothing_is_sent(tmp_path, test_pki, revoked_broker, outgoing,
                                                                     capsys):
    queued = fill_queue(outgoing, 3)
    config = ssm_yaml(tmp_path, test_pki, outgoing, brokers=[f"localhost:{revoked_broker.broker.tls_port}"],
                      capath=revoked_broker.revoking_capath)

    assert main(["--config", str(config), "ssm", "once"]) == 1

    err = capsys.readouterr().err
    assert "TLS: broker certificate rejected: certificate /DC=org/DC=example/CN=localhost (serial" in err
    assert "was revoked by /DC=org/DC=example/CN=SSM Test CA" in err
    assert set(outgoing.names()) == set(queued) and not list(outgoing.path.rglob("*.lck"))
    assert main(["--config", str(config), "ssm", "status", "--json"]) == 0
    assert "was revoked" in json.loads(capsys.readouterr().out)["last_run"]["error"]


def test_the_same_broker_is_used_while_its_certificate_is_not_revoked(tmp_path, test_pki, revoked_broker,
                                                                      destination, consume, outgoing):
    queued = fill_queue(outgoing, 3)
    consumer = consume(revoked_broker.broker.port, destination)
    config = ssm_yaml(tmp_path, test_pki, outgoing, brokers=[f"localhost:{revoked_broker.broker.tls_port}"],
                      destination=destination, capath=revoked_broker.capath)

    assert main(["--config", str(config), "ssm", "once"]) == 0

    for message in consumer.wait_for(3):
        assert apel_receive(message.body, test_pki.capath)[0] == queued[message.headers["empa-id"]]


def test_an_expired_crl_of_the_brokers_ca_stops_sending_until_fetch_crl_runs(tmp_path, test_pki, broker, outgoing,
                                                                            capsys):
    queued = fill_queue(outgoing, 2)
    stale = pki.write_ca_directory(tmp_path / "stale-certificates", [test_pki.ca], crl_options={
        "last_update": utcnow() - timedelta(days=10), "next_update": utcnow() - timedelta(days=1)})
    config = ssm_yaml(tmp_path, test_pki, outgoing, brokers=[f"localhost:{broker.tls_port}"], capath=stale)

    assert main(["--config", str(config), "ssm", "once"]) == 1

    err = capsys.readouterr().err
    assert "broker certificate rejected" in err and "expired at" in err and "run fetch-crl" in err
    assert set(outgoing.names()) == set(queued)


@pytest.mark.parametrize("names, host, matches", [
    (["mq.example.org"], "mq.example.org", True),
    (["MQ.Example.org"], "mq.example.ORG.", True),
    (["*.example.org"], "mq.example.org", True),
    (["*.example.org"], "a.mq.example.org", False),  # one label only
    (["*.org"], "example.org", False),  # no wildcard right under a top-level domain
    (["m*.example.org"], "mq.example.org", False),  # partial wildcards are not honoured
    (["mq.example.org"], "mq.example.org.evil", False),
    (["127.0.0.1"], "127.0.0.1", True),
    (["::1"], "::1", True),
    (["mq.example.org"], "127.0.0.1", False),
])
def test_broker_host_names_are_matched_as_tls_clients_match_them(test_pki, names, host, matches):
    cert = test_pki.ca.issue("/DC=org/DC=example/CN=ignored.example.org", profile="server", sans=names).cert
    if matches:
        check_hostname(cert, host)
    else:
        with pytest.raises(BrokerCertificateError, match=f"not valid for '{host}'"):
            check_hostname(cert, host)


def test_a_certificate_without_dns_names_is_matched_by_its_common_name(test_pki):
    cert = test_pki.ca.issue("/DC=org/DC=example/CN=mq.example.org", profile="server", sans=[]).cert
    with pytest.raises(cx509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(cx509.SubjectAlternativeName)
    check_hostname(cert, "mq.example.org")
    with pytest.raises(BrokerCertificateError):
        check_hostname(cert, "other.example.org")
