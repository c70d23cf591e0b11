"""S/MIME (PKCS#7) signing, encryption and signature verification, as APEL and image lists use them.

Signing and encryption use the ``cryptography`` library and produce what
``openssl smime -sign -text`` and ``openssl smime -encrypt -aes128`` produce:

* :func:`sign` returns a clear-signed ``multipart/signed`` message (SHA-256,
  signer certificate embedded) whose signed part is ``Content-Type:
  text/plain``, a blank line, then the payload.  Line endings are LF, as on
  the wire from apel/ssm (it reads openssl's output in text mode); the
  signature covers the canonical CRLF form, which is what verifiers check.
* :func:`encrypt` wraps a signed message in AES-128 ``enveloped-data`` for
  the server certificate (``application/x-pkcs7-mime``, base64).

Library versions: signing and verification work with ``cryptography`` >= 36
(RHEL 9: 36, Debian 12: 38).  Encryption needs ``PKCS7EnvelopeBuilder``
(cryptography >= 43) and decryption ``pkcs7_decrypt_smime`` (>= 44);
:func:`encryption_problem` tells at start-up whether this installation can
encrypt, so a configured ``server_cert`` fails there and not at the first message.

Verification (:func:`verify`) checks the signature only: chain, CRL and DN
trust checks belong to :mod:`fedcloud_site.x509`.  ``cryptography`` has no
public PKCS#7 verification, and a hand-written one would have to parse and
re-encode the CMS signed attributes (a DER parser we would own and get
wrong in subtle ways).  We therefore run ``openssl smime -verify -noverify``
— the same call the APEL receiver and atrope make, so a message we accept is
a message they accept — with the input on stdin, a bounded timeout and the
exit status checked (never its output text).  The certificates are then read
from the PKCS#7 structure with ``cryptography``.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.message
import os
import quopri
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Union

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7

from .errors import FedcloudSiteError
from .x509 import load_pem_certificates

#: the private key types S/MIME signing supports
SigningKey = Union[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey]

OPENSSL = os.environ.get("FEDCLOUD_SITE_OPENSSL", "openssl")
VERIFY_TIMEOUT = 60.0

#: the first cryptography releases with PKCS#7 encryption (PKCS7EnvelopeBuilder) and decryption
ENCRYPTION_SINCE = "43"
DECRYPTION_SINCE = "44"

_TEXT_PART_HEADER = b"Content-Type: text/plain\n\n"
_HEADER_LINE = re.compile(rb"^[A-Za-z0-9][A-Za-z0-9-]*:")


class SmimeError(FedcloudSiteError):
    """A message could not be signed, encrypted, decrypted or verified."""


@dataclass(frozen=True)
class VerifiedMessage:
    """A message whose signature was checked: its content, signer and the certificates it carried."""

    content: bytes
    signer: x509.Certificate
    certificates: List[x509.Certificate] = field(default_factory=list)


def sign(payload: bytes, cert: x509.Certificate, key: SigningKey) -> bytes:
    """Clear-sign ``payload`` like ``openssl smime -sign -text`` (SHA-256, signer cert embedded, LF endings).

    The signature is made over the canonical signed part (``Content-Type:
    text/plain``, blank line, payload, all with CRLF) and the MIME envelope is
    written directly: ``cryptography``'s own S/MIME output goes through
    Python's ``email`` generator, which costs four times the signature itself.
    """
    if not isinstance(payload, (bytes, bytearray)):
        raise TypeError("payload must be bytes")
    if not payload:
        raise SmimeError("refusing to sign an empty message")
    text = bytes(payload).replace(b"\r\n", b"\n")
    signed_part = _TEXT_PART_HEADER + text
    try:
        der = (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(signed_part.replace(b"\n", b"\r\n"))
            .add_signer(cert, key, hashes.SHA256())
            .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary])
        )
    except (ValueError, TypeError) as exc:
        raise SmimeError(f"cannot sign message: {exc}") from exc
    boundary = b"----" + os.urandom(16).hex().upper().encode("ascii")
    return b"".join((
        b"MIME-Version: 1.0\n"
        b'Content-Type: multipart/signed; protocol="application/x-pkcs7-signature"; micalg="sha-256"; '
        b'boundary="', boundary, b'"\n\n'
        b"This is an S/MIME signed message\n\n"
        b"--", boundary, b"\n",
        signed_part,
        b"\n--", boundary, b"\n"
        b'Content-Type: application/x-pkcs7-signature; name="smime.p7s"\n'
        b"Content-Transfer-Encoding: base64\n"
        b'Content-Disposition: attachment; filename="smime.p7s"\n\n',
        _base64_lines(der),
        b"\n--", boundary, b"--\n\n",
    ))


def encryption_problem() -> Optional[str]:
    """Why this installation cannot encrypt (the ``cryptography`` release is too old), or None."""
    if hasattr(pkcs7, "PKCS7EnvelopeBuilder"):
        return None
    return (f"S/MIME encryption needs cryptography >= {ENCRYPTION_SINCE} (PKCS7EnvelopeBuilder); "
            f"this is cryptography {cryptography_version()}")


def cryptography_version() -> str:
    import cryptography

    return str(getattr(cryptography, "__version__", "?"))


def encrypt(signed: bytes, server_cert: x509.Certificate) -> bytes:
    """Encrypt a (signed) message for ``server_cert`` like ``openssl smime -encrypt -aes128``."""
    if not signed:
        raise SmimeError("refusing to encrypt an empty message")
    problem = encryption_problem()
    if problem is not None:
        raise SmimeError(problem)
    try:
        builder = pkcs7.PKCS7EnvelopeBuilder().set_data(bytes(signed)).add_recipient(server_cert)
        if hasattr(builder, "set_content_encryption_algorithm"):  # cryptography >= 45
            builder = builder.set_content_encryption_algorithm(algorithms.AES128)
        # (43 and 44 always encrypt with AES-128-CBC, what apel/ssm uses too)
        der = builder.encrypt(serialization.Encoding.DER, [])
    except (ValueError, TypeError) as exc:
        raise SmimeError(f"cannot encrypt message: {exc}") from exc
    body = _base64_lines(der)
    headers = (
        b"MIME-Version: 1.0\n"
        b'Content-Disposition: attachment; filename="smime.p7m"\n'
        b'Content-Type: application/x-pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"\n'
        b"Content-Transfer-Encoding: base64\n\n"
    )
    return headers + body + b"\n"


def is_encrypted(message: bytes) -> bool:
    """True for an enveloped (encrypted) S/MIME message, as the APEL receiver decides it."""
    head = message[:4096].lower()
    return b"enveloped-data" in head and (b"application/pkcs7-mime" in head or b"application/x-pkcs7-mime" in head)


def decrypt(message: bytes, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> bytes:
    """Decrypt an enveloped S/MIME message with the recipient's certificate and key."""
    decrypt_smime = getattr(pkcs7, "pkcs7_decrypt_smime", None)
    if decrypt_smime is None:
        raise SmimeError(f"S/MIME decryption needs cryptography >= {DECRYPTION_SINCE}; this is cryptography "
                         f"{cryptography_version()}")
    try:
        return decrypt_smime(message, cert, key, [])
    except (ValueError, TypeError) as exc:
        raise SmimeError(f"cannot decrypt message: {exc}") from exc


def verify(smime_bytes: bytes, *, text: bool = True, strip_headers: bool = True,
           timeout: float = VERIFY_TIMEOUT) -> VerifiedMessage:
    """Check the signature of a clear-signed or opaque signed S/MIME message (not the chain).

    ``text``: the content was signed as text, so CRLF is turned back into LF
    (what the APEL receiver gets).  ``strip_headers``: drop a leading MIME
    header block (``Content-Type: text/plain`` from ``-text``) and undo its
    transfer encoding, as the APEL receiver does.
    """
    if not smime_bytes or not smime_bytes.strip():
        raise SmimeError("empty message")
    if is_encrypted(smime_bytes):
        raise SmimeError("message is encrypted (enveloped-data); decrypt it first")
    der = _pkcs7_der(smime_bytes)
    with tempfile.TemporaryDirectory(prefix="fedcloud-smime-") as tmp:
        signer_file = os.path.join(tmp, "signer.pem")
        try:
            proc = subprocess.run(
                [OPENSSL, "smime", "-verify", "-noverify", "-signer", signer_file],
                input=smime_bytes, capture_output=True, timeout=timeout, check=False)
        except FileNotFoundError as exc:
            raise SmimeError(f"cannot verify signature: {OPENSSL} not found") from exc
        except subprocess.TimeoutExpired as exc:
            raise SmimeError(f"signature verification timed out after {timeout:g} s") from exc
        if proc.returncode != 0:
            detail = _openssl_error(proc.stderr)
            raise SmimeError(f"signature verification failed: {detail}")
        try:
            with open(signer_file, "rb") as handle:
                signer_pem = handle.read()
            signer = load_pem_certificates(signer_pem)[0]
        except (OSError, ValueError, IndexError) as exc:
            raise SmimeError("signature verified but openssl gave no signer certificate") from exc
    content = proc.stdout
    if text:
        content = content.replace(b"\r\n", b"\n")
    if strip_headers:
        content = strip_mime_headers(content)
    try:
        certificates = pkcs7.load_der_pkcs7_certificates(der) if der is not None else [signer]
    except ValueError:
        certificates = [signer]
    return VerifiedMessage(content=content, signer=signer, certificates=list(certificates))


def strip_mime_headers(content: bytes) -> bytes:
    """Remove a leading MIME header block (with a Content-Type) and decode its transfer encoding.

    Unlike the APEL receiver (which always cuts up to the first blank line),
    content that does not start with MIME headers is returned unchanged, so
    opaque-signed documents without ``-text`` headers keep their first lines.
    """
    newline = b"\r\n" if content.startswith(b"\r\n") or b"\r\n\r\n" in content[:2048] else b"\n"
    end = content.find(newline * 2)
    if end < 0:
        return content
    lines = content[:end].split(newline)
    if not lines or not all(_HEADER_LINE.match(line) or line[:1] in (b" ", b"\t") for line in lines):
        return content
    headers = {}
    for line in lines:
        if _HEADER_LINE.match(line):
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
    if b"content-type" not in headers:
        return content
    body = content[end + 2 * len(newline):]
    encoding = headers.get(b"content-transfer-encoding", b"")
    if encoding == b"base64":
        try:
            return base64.b64decode(body)
        except (binascii.Error, ValueError) as exc:
            raise SmimeError("signed content says base64 but is not valid base64") from exc
    if encoding == b"quoted-printable":
        return quopri.decodestring(body)
    return body


def _pkcs7_der(smime_bytes: bytes) -> Optional[bytes]:
    """The DER PKCS#7 structure of a clear-signed or opaque signed message (None if not found)."""
    message = email.message_from_bytes(smime_bytes)
    if message.is_multipart():
        parts: Sequence[email.message.Message] = message.get_payload()  # type: ignore[assignment]
        for part in parts:
            if "pkcs7-signature" in part.get_content_type():
                data = part.get_payload(decode=True)
                return data if isinstance(data, bytes) else None
        return None
    if "pkcs7-mime" in message.get_content_type():
        data = message.get_payload(decode=True)
        return data if isinstance(data, bytes) else None
    return None


def _base64_lines(data: bytes, width: int = 64) -> bytes:
    """Base64 in ``width``-column LF-terminated lines, as openssl writes it."""
    encoded = base64.b64encode(data)
    return b"".join(encoded[i:i + width] + b"\n" for i in range(0, len(encoded), width))


def _openssl_error(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    useful = [line for line in lines if "error" in line.lower() or "failure" in line.lower()] or lines
    return "; ".join(useful[-3:]) or "openssl reported an error"
