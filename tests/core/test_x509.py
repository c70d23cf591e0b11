"""fedcloud_site.x509 and the test PKI (fedcloud_site.demo.ca), cross-checked with the openssl CLI."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509 as cx509

from fedcloud_site import x509
from fedcloud_site.demo.ca import CertificateAuthority, write_ca_directory, write_crl
from fedcloud_site.timeutil import utcnow


@pytest.fixture(scope="module")
def root() -> CertificateAuthority:
    return CertificateAuthority("/DC=org/DC=example/CN=Test Root CA")


@pytest.fixture(scope="module")
def issuing(root) -> CertificateAuthority:
    return root.intermediate("/DC=org/DC=example/CN=Test Issuing CA")


def openssl_verify(capath: Path, leaf: Path, untrusted: Path = None, crl_check: bool = False) -> bool:
    cmd = ["openssl", "verify", "-CApath", str(capath)]
    if untrusted:
        cmd += ["-untrusted", str(untrusted)]
    if crl_check:
        cmd.append("-crl_check_all")
    cmd.append(str(leaf))
    return subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0


def test_slash_dn_round_trips_and_keeps_slashes_inside_values():
    dn = "/DC=org/DC=example/O=Hosts/CN=host/appdb.example.org/emailAddress=a@b.org"
    name = x509.slash_to_name(dn)
    assert name.get_attributes_for_oid(cx509.oid.NameOID.COMMON_NAME)[0].value == "host/appdb.example.org"
    assert x509.dn_to_slash(name) == dn


def test_dn_equal_ignores_attribute_aliases_but_not_values():
    assert x509.dn_equal("/DC=org/CN=x/Email=a@b", "/DC=org/CN=x/emailAddress=a@b")
    assert not x509.dn_equal("/DC=org/CN=x", "/DC=org/CN=y")
    with pytest.raises(x509.X509Error, match="must start with"):
        x509.slash_to_name("CN=x,DC=org")


def test_issued_host_certificate_has_chosen_dn_sans_and_no_smime_purpose(issuing):
    host = issuing.host("appdb.example.org")
    assert host.dn == "/DC=org/DC=example/CN=appdb.example.org"
    assert host.issuer_dn == issuing.dn
    sans = host.cert.extensions.get_extension_for_class(cx509.SubjectAlternativeName).value
    assert "appdb.example.org" in sans.get_values_for_type(cx509.DNSName)
    assert "localhost" in sans.get_values_for_type(cx509.DNSName)
    eku = host.cert.extensions.get_extension_for_class(cx509.ExtendedKeyUsage).value
    assert cx509.oid.ExtendedKeyUsageOID.EMAIL_PROTECTION not in list(eku)


def test_key_pair_loading_checks_that_key_matches(tmp_path, root):
    one, other = root.host("one.example.org"), root.host("two.example.org")
    files = one.write(tmp_path / "one")
    cert, _ = x509.load_key_pair(files.cert, files.key)
    assert x509.subject_dn(cert) == one.dn
    other_key = tmp_path / "other.key"
    other_key.write_bytes(other.key_pem())
    with pytest.raises(x509.X509Error, match="does not match"):
        x509.load_key_pair(files.cert, other_key)


def test_expiry_margin(root):
    cred = root.host("short.example.org", days=3)
    x509.check_validity(cred.cert)
    assert x509.expires_within(cred.cert, timedelta(days=7))
    with pytest.raises(x509.X509Error, match="expires at"):
        x509.check_validity(cred.cert, margin=timedelta(days=7))


def test_chain_through_intermediate_verifies_like_openssl(tmp_path, root, issuing):
    capath = write_ca_directory(tmp_path / "ca", [root, issuing])
    leaf = issuing.host("ok.example.org")
    files = leaf.write(tmp_path / "leaf")
    chain = x509.verify_chain(leaf.cert, capath)
    assert [x509.subject_dn(c) for c in chain] == [leaf.dn, issuing.dn, root.dn]
    assert openssl_verify(capath, files.cert, crl_check=True)


def test_intermediate_sent_by_the_signer_completes_the_chain(tmp_path, root, issuing):
    capath = write_ca_directory(tmp_path / "ca", [root])
    leaf = issuing.host("ok.example.org")
    with pytest.raises(x509.VerificationError, match="not a trusted CA"):
        x509.verify_chain(leaf.cert, capath)
    assert len(x509.verify_chain(leaf.cert, capath, untrusted=leaf.chain)) == 3


def test_untrusted_ca_is_rejected(tmp_path, root):
    capath = write_ca_directory(tmp_path / "ca", [root])
    stranger = CertificateAuthority("/DC=org/DC=evil/CN=Evil CA")
    with pytest.raises(x509.VerificationError, match="Evil CA is not a trusted CA"):
        x509.verify_chain(stranger.host("x.example.org").cert, capath)


def test_forged_signature_is_rejected(tmp_path, root):
    capath = write_ca_directory(tmp_path / "ca", [root])
    forged = root.issue("/DC=org/DC=example/CN=forged", issuer_key=CertificateAuthority("/CN=other").key)
    with pytest.raises(x509.VerificationError, match="does not verify"):
        x509.verify_chain(forged.cert, capath)


def test_expired_and_not_yet_valid_leaves_are_rejected(tmp_path, root):
    capath = write_ca_directory(tmp_path / "ca", [root])
    now = utcnow()
    old = root.host("old.example.org", not_before=now - timedelta(days=30), not_after=now - timedelta(days=1))
    with pytest.raises(x509.VerificationError, match="expired at"):
        x509.verify_chain(old.cert, capath)
    future = root.host("new.example.org", not_before=now + timedelta(days=1))
    with pytest.raises(x509.VerificationError, match="not valid before"):
        x509.verify_chain(future.cert, capath)


def test_revoked_certificate_is_rejected_when_a_crl_is_present(tmp_path):
    ca = CertificateAuthority("/DC=org/DC=example/CN=Revoking CA")
    good, bad = ca.host("good.example.org"), ca.host("bad.example.org")
    capath = write_ca_directory(tmp_path / "ca", [ca])
    x509.verify_chain(bad.cert, capath)
    ca.revoke(bad)
    write_crl(capath, ca)
    with pytest.raises(x509.VerificationError, match="revoked"):
        x509.verify_chain(bad.cert, capath)
    x509.verify_chain(good.cert, capath)
    assert not openssl_verify(capath, bad.write(tmp_path / "bad").cert, crl_check=True)


def test_missing_crl_is_accepted_but_a_stale_one_is_not(tmp_path):
    ca = CertificateAuthority("/DC=org/DC=example/CN=Stale CA")
    leaf = ca.host("x.example.org")
    capath = write_ca_directory(tmp_path / "ca", [ca], crls=False)
    x509.verify_chain(leaf.cert, capath)
    write_crl(capath, ca, last_update=utcnow() - timedelta(days=10), next_update=utcnow() - timedelta(days=1))
    with pytest.raises(x509.VerificationError, match="CRL .* expired"):
        x509.verify_chain(leaf.cert, capath)
    x509.verify_chain(leaf.cert, capath, allow_stale_crls=True)


def test_end_entity_cannot_act_as_ca(tmp_path, root):
    capath = write_ca_directory(tmp_path / "ca", [root])
    fake_ca = root.host("fake-ca.example.org")
    victim = CertificateAuthority.__new__(CertificateAuthority)
    victim.key, victim.cert, victim.parent = fake_ca.key, fake_ca.cert, root
    victim.revoked, victim._crl_number = [], 0
    leaf = victim.issue("/DC=org/DC=example/CN=victim")
    with pytest.raises(x509.VerificationError, match="is not a CA"):
        x509.verify_chain(leaf.cert, capath, untrusted=[fake_ca.cert])


def test_trust_store_reloads_when_the_directory_changes(tmp_path, root):
    capath = write_ca_directory(tmp_path / "ca", [root])
    first = x509.trust_store(capath)
    assert x509.trust_store(capath) is first
    other = CertificateAuthority("/DC=org/DC=example/CN=Second CA")
    write_ca_directory(capath, [other])
    second = x509.trust_store(capath)
    assert second is not first and len(second.cas) == 2


def test_pkcs12_export_loads_back(root):
    cred = root.host("p12.example.org")
    from cryptography.hazmat.primitives.serialization import pkcs12

    key, cert, extra = pkcs12.load_key_and_certificates(cred.pkcs12(b"secret"), b"secret")
    assert cert == cred.cert and x509.key_matches_certificate(key, cred.cert)
