"""S/MIME signing/encryption (cryptography) and verification, checked against the openssl CLI."""

from __future__ import annotations

import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from fedcloud_site import smime
from fedcloud_site.demo import ca as pki

PAYLOAD = b"APEL-cloud-message: v0.4\nVMUUID: 1\nSiteName: TEST\n%%\nVMUUID: 2\nSiteName: TEST\n"
# Grid host certificates have no S/MIME purpose; the APEL receiver checks the chain without one
# (openssl verify, then smime -verify -noverify).  "-purpose any" is the same check in one call.


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    authority = pki.CertificateAuthority("/DC=org/DC=example/CN=SMIME Test CA")
    authority.cert_path = authority.write_cert(tmp_path_factory.mktemp("smime-ca") / "ca.pem")
    return authority


@pytest.fixture(scope="module")
def host(ca):
    return ca.host("host.example.org")


def _openssl(*args: str, data: bytes) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], input=data, capture_output=True, timeout=30, check=False)


def test_signed_message_has_the_openssl_smime_text_form(host):
    signed = smime.sign(PAYLOAD, host.cert, host.key)
    assert b"\r" not in signed
    head, _, _ = signed.partition(b"\n\n")
    assert b"multipart/signed" in head and b'micalg="sha-256"' in head
    assert b'protocol="application/x-pkcs7-signature"' in head
    # the signed part is Content-Type: text/plain, a blank line, then the payload unchanged
    assert b"\nContent-Type: text/plain\n\n" + PAYLOAD in signed


def test_openssl_verifies_our_signature_against_the_ca_and_returns_the_payload(ca, host, tmp_path):
    signed = smime.sign(PAYLOAD, host.cert, host.key)
    result = _openssl("smime", "-verify", "-purpose", "any", "-CAfile", str(ca.cert_path), data=signed)
    assert result.returncode == 0, result.stderr
    content = result.stdout.replace(b"\r\n", b"\n")
    assert content == b"Content-Type: text/plain\n\n" + PAYLOAD


def test_verify_returns_payload_signer_and_certificates(host):
    verified = smime.verify(smime.sign(PAYLOAD, host.cert, host.key))
    assert verified.content == PAYLOAD
    assert verified.signer == host.cert
    assert host.cert in verified.certificates


def test_verify_accepts_what_openssl_smime_sign_text_produces(host, tmp_path):
    key_path = tmp_path / "key.pem"
    key_path.write_bytes(host.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    cert_path = tmp_path / "cert.pem"
    cert_path.write_bytes(host.cert.public_bytes(serialization.Encoding.PEM))
    for extra in ([], ["-nodetach"]):  # clear-signed and opaque signed-data
        made = _openssl("smime", "-sign", "-text", *extra, "-inkey", str(key_path), "-signer", str(cert_path),
                        data=PAYLOAD)
        assert made.returncode == 0, made.stderr
        verified = smime.verify(made.stdout)
        assert verified.content == PAYLOAD
        assert verified.signer == host.cert


def test_opaque_content_without_mime_headers_is_kept_whole(host, tmp_path):
    key_path = tmp_path / "key.pem"
    key_path.write_bytes(host.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    cert_path = tmp_path / "cert.pem"
    cert_path.write_bytes(host.cert.public_bytes(serialization.Encoding.PEM))
    document = b'{"hv:imagelist": {"dc:title": "x"}}\n\n{"second": 1}\n'
    made = _openssl("smime", "-sign", "-nodetach", "-binary", "-inkey", str(key_path), "-signer", str(cert_path),
                    data=document)
    assert made.returncode == 0, made.stderr
    assert smime.verify(made.stdout).content == document


def test_tampered_content_fails_verification(host):
    signed = smime.sign(PAYLOAD, host.cert, host.key)
    with pytest.raises(smime.SmimeError, match="verification failed"):
        smime.verify(signed.replace(b"VMUUID: 2", b"VMUUID: 3"))


def test_garbage_and_empty_input_fail_clearly():
    with pytest.raises(smime.SmimeError):
        smime.verify(b"")
    with pytest.raises(smime.SmimeError, match="verification failed"):
        smime.verify(b"MIME-Version: 1.0\nContent-Type: text/plain\n\nhello\n")


def test_empty_payload_is_never_signed(host):
    with pytest.raises(smime.SmimeError, match="empty"):
        smime.sign(b"", host.cert, host.key)


@pytest.mark.skipif(smime.encryption_problem() is not None, reason=str(smime.encryption_problem()))
def test_encrypted_message_decrypts_with_openssl_and_with_decrypt(ca, host, tmp_path):
    server = ca.host("server.example.org")
    signed = smime.sign(PAYLOAD, host.cert, host.key)
    encrypted = smime.encrypt(signed, server.cert)
    assert smime.is_encrypted(encrypted)
    assert b"application/x-pkcs7-mime; smime-type=enveloped-data" in encrypted
    with pytest.raises(smime.SmimeError, match="encrypted"):
        smime.verify(encrypted)
    key_path = tmp_path / "server.key"
    key_path.write_bytes(server.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    cert_path = tmp_path / "server.pem"
    cert_path.write_bytes(server.cert.public_bytes(serialization.Encoding.PEM))
    result = _openssl("smime", "-decrypt", "-recip", str(cert_path), "-inkey", str(key_path), data=encrypted)
    assert result.returncode == 0, result.stderr
    assert smime.verify(result.stdout).content == PAYLOAD
    if hasattr(pkcs7, "pkcs7_decrypt_smime"):
        assert smime.verify(smime.decrypt(encrypted, server.cert, server.key)).content == PAYLOAD
    else:  # cryptography 43
        with pytest.raises(smime.SmimeError, match="decryption needs cryptography >= 44"):
            smime.decrypt(encrypted, server.cert, server.key)


@pytest.mark.skipif(smime.encryption_problem() is None, reason="this cryptography can encrypt (runs on < 43)")
def test_encryption_on_an_old_cryptography_is_refused_naming_the_version_it_needs(host):
    with pytest.raises(smime.SmimeError, match=r"needs cryptography >= 43 .*; this is cryptography \d"):
        smime.encrypt(smime.sign(PAYLOAD, host.cert, host.key), host.cert)


def test_strip_mime_headers_decodes_transfer_encodings():
    assert smime.strip_mime_headers(b"Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\naGVsbG8=\n") \
        == b"hello"
    assert smime.strip_mime_headers(b"Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\n"
                                    b"a=3Db\n") == b"a=b\n"
    assert smime.strip_mime_headers(b"no headers here\n\nbody\n") == b"no headers here\n\nbody\n"


def test_ec_keys_sign_too(ca):
    ec_host = ca.host("ec-host.example.org", key_type="ec")
    assert smime.verify(smime.sign(PAYLOAD, ec_host.cert, ec_host.key)).signer == ec_host.cert


@pytest.mark.parametrize("payload", [b"no trailing newline", b"crlf lines\r\nsecond\r\n", b"x" * 40000 + b"\n"])
def test_any_text_payload_round_trips_through_openssl(ca, host, payload):
    signed = smime.sign(payload, host.cert, host.key)
    result = _openssl("smime", "-verify", "-purpose", "any", "-CAfile", str(ca.cert_path), data=signed)
    assert result.returncode == 0, result.stderr
    assert smime.verify(signed).content == payload.replace(b"\r\n", b"\n")
