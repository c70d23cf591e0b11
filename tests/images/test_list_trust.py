"""A list that is not authentic, not current or not well formed changes nothing and says exactly why."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta

import pytest

from fedcloud_site.demo.ca import CertificateAuthority, write_ca_directory, write_crl
from fedcloud_site.timeutil import iso_utc, utcnow


def registered_ids(world):
    return sorted(i.id for i in world.cloud_images())


def good_then(world, bad_publish):
    """Register a good list, then publish something bad; returns the registered image ids before."""
    world.publish(world.image_list([world.image("good.raw")]))
    assert world.sync() == 0
    before = registered_ids(world)
    assert len(before) == 1
    bad_publish()
    return before


def assert_rejected(world, before, stage, *fragments):
    assert world.sync() == 1
    state = world.list_state()
    assert state["state"] == "failed"
    assert state["reason"].startswith(stage + ":"), state["reason"]
    for fragment in fragments:
        assert fragment in state["reason"], state["reason"]
    assert registered_ids(world) == before
    assert all(row["state"] == "registered" for row in world.status())
    assert all(row["list_state"] == "failed" for row in world.status())


def test_tampered_list_is_rejected_and_registered_images_stay(world):
    def publish():
        signed = world.sign(world.image_list([world.image("evil.raw")], version="20250101000000"))
        world.publish(None, raw=signed.replace(b"evil.raw", b"evil.rax"))

    before = good_then(world, publish)
    assert_rejected(world, before, "signature", "verification failed")
    assert world.server.requests_for("/images/evil.raw") == []


def test_list_signed_by_another_endorser_is_rejected(world):
    before = good_then(world, lambda: world.publish(
        world.image_list([world.image("x.raw")], version="20250101000000",
                         endorser="/DC=org/DC=example/O=Hosts/CN=impostor.example.org"),
        signer=world.pki.impostor))
    assert_rejected(world, before, "endorser", "impostor.example.org", "endorser_dn")


def test_list_naming_another_endorser_than_its_signer_is_rejected(world):
    before = good_then(world, lambda: world.publish(
        world.image_list([world.image("x.raw")], version="20250101000000",
                         endorser="/DC=org/DC=example/O=Hosts/CN=someone-else.example.org")))
    assert_rejected(world, before, "endorser", "hv:dn")


def test_signer_from_an_untrusted_ca_is_rejected(world):
    before = good_then(world, lambda: world.publish(
        world.image_list([world.image("x.raw")], version="20250101000000"), signer=world.pki.rogue_endorser))
    assert_rejected(world, before, "certificate", "Rogue CA", "not a trusted CA")


def test_revoked_signer_is_rejected_once_the_crl_lists_it(world, tmp_path):
    ca = CertificateAuthority(world.pki.ca.dn)  # same DN as the session CA, separate keys: its own directory
    endorser = ca.host("appdb.example.org", dn_prefix="/DC=org/DC=example/O=Hosts")
    world.capath = write_ca_directory(tmp_path / "revoking-ca", [ca])
    world.publish(world.image_list([world.image("good.raw")]), signer=endorser)
    world.write_config()
    assert world.sync() == 0
    before = registered_ids(world)
    ca.revoke(endorser)
    write_crl(world.capath, ca)
    world.publish(world.image_list([world.image("good.raw")], version="20250101000000"), signer=endorser)
    assert_rejected(world, before, "certificate", "revoked")


def test_expired_list_is_rejected(world):
    before = good_then(world, lambda: world.publish(world.image_list(
        [world.image("x.raw")], version="20250101000000", expires=iso_utc(utcnow() - timedelta(hours=1)))))
    assert_rejected(world, before, "expired", "dc:date:expires")


def test_older_list_version_is_rejected_as_a_replay(world):
    before = good_then(world, lambda: world.publish(world.image_list([], version="20230101000000")))
    assert_rejected(world, before, "version", "lower than the last accepted 20240101000000")


def test_list_with_another_identifier_is_rejected(world):
    before = good_then(world, lambda: world.publish(world.image_list(
        [], version="20250101000000", identifier="00000000-0000-4000-8000-000000000bad")))
    assert_rejected(world, before, "identifier", "000000000bad")


def test_malformed_json_is_rejected_with_its_position(world):
    before = good_then(world, lambda: world.publish(b'{"hv:imagelist": {"dc:identifier": "x",,}}'))
    assert_rejected(world, before, "content", "not valid JSON", "line 1")


def test_missing_required_list_key_is_named(world):
    def publish():
        document = world.image_list([], version="20250101000000")
        del document["hv:imagelist"]["dc:date:expires"]
        world.publish(document)

    before = good_then(world, publish)
    assert_rejected(world, before, "content", "dc:date:expires")


def test_bad_image_entry_is_named_and_the_rest_of_the_list_is_used(world):
    good, other = world.image("good.raw"), world.image("other.raw")
    bad = dict(good, **{"hv:size": "big"})
    world.publish(world.image_list([other, bad]))
    assert world.sync() == 0
    state = world.list_state()
    assert state["state"] == "ok"
    assert f"hv:images[1] (dc:identifier {good['dc:identifier']}): hv:size must be a non-negative integer" \
        in state["reason"]
    assert [r["identifier"] for r in world.by_state("registered")] == [other["dc:identifier"]]


def test_unreachable_list_keeps_the_last_good_one(world):
    before = good_then(world, lambda: world.server.remove(world.list_path))
    assert_rejected(world, before, "fetch", "HTTP 404")


def test_host_certificate_without_smime_purpose_is_accepted(world):
    from cryptography import x509 as cx509

    eku = world.pki.endorser.cert.extensions.get_extension_for_class(cx509.ExtendedKeyUsage).value
    assert cx509.oid.ExtendedKeyUsageOID.EMAIL_PROTECTION not in list(eku)
    world.publish(world.image_list([world.image("a.raw")]))
    assert world.sync() == 0
    assert world.list_state()["signer_dn"] == world.pki.endorser.dn


@pytest.mark.parametrize("options", [[], ["-nodetach"]], ids=["clear-signed", "opaque"])
def test_lists_signed_by_the_openssl_cli_as_vmcaster_does_are_accepted(world, tmp_path, options):
    files = world.pki.endorser.write(tmp_path / "endorser")
    payload = tmp_path / "list.json"
    payload.write_text(json.dumps(world.image_list([world.image("a.raw")])))
    signed = subprocess.run(["openssl", "smime", "-sign", *options, "-in", str(payload), "-signer", str(files.cert),
                             "-inkey", str(files.key)], capture_output=True, check=True, timeout=30).stdout
    world.publish(None, raw=signed)
    assert world.sync() == 0
    assert world.by_state("registered")


def _forged_name(*rdns):
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    oids = {"DC": NameOID.DOMAIN_COMPONENT, "O": NameOID.ORGANIZATION_NAME, "CN": NameOID.COMMON_NAME}
    return x509.Name([x509.RelativeDistinguishedName([x509.NameAttribute(oids[k], v) for k, v in rdn])
                      for rdn in rdns])


@pytest.mark.parametrize("forged", [
    # one O value holding the rest of the endorser's DN: renders as /DC=org/DC=example/O=Hosts/CN=appdb...
    [[("DC", "org")], [("DC", "example")], [("O", "Hosts/CN=appdb.example.org")]],
    # a multi-valued RDN O=Hosts+CN=appdb...: also renders as the endorser's slash-form DN
    [[("DC", "org")], [("DC", "example")], [("O", "Hosts"), ("CN", "appdb.example.org")]],
], ids=["slash-in-value", "multi-valued-rdn"])
def test_a_certificate_whose_rendered_dn_mimics_the_endorser_is_not_the_endorser(world, forged):
    impostor = world.pki.ca.issue(_forged_name(*forged), profile="host", sans=["impostor.example.org"])
    from fedcloud_site.x509 import subject_dn
    assert subject_dn(impostor.cert) == "/DC=org/DC=example/O=Hosts/CN=appdb.example.org"  # the rendered look-alike
    before = good_then(world, lambda: world.publish(
        world.image_list([world.image("x.raw")], version="20250101000000"), signer=impostor))
    assert_rejected(world, before, "endorser", "endorser_dn")
    assert world.server.requests_for("/images/x.raw") == []
