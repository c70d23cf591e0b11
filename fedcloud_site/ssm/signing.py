"""The sender's credentials: host certificate and key (checked at start-up) and the optional server certificate.

apel/ssm checks these too, but ignores openssl's exit status when signing, so an
unsignable message goes out empty and is then deleted.  Here every problem is
found before anything is sent and named with the file it comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, List, Optional

from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .. import smime
from ..errors import FedcloudSiteError
from ..x509 import X509Error, check_validity, load_certificate, load_key_pair, subject_dn, trust_store, verify_chain


class CredentialError(FedcloudSiteError):
    """The host certificate, key, CA directory or server certificate cannot be used."""


@dataclass
class Signer:
    """Signs (and optionally encrypts) messages with the host credentials."""

    cert: cx509.Certificate
    key: Any
    server_cert: Optional[cx509.Certificate] = None
    warnings: Optional[List[str]] = None

    @property
    def dn(self) -> str:
        return subject_dn(self.cert)

    def sign(self, payload: bytes) -> bytes:
        """The S/MIME form of ``payload`` to put on the wire (signed, then encrypted if configured)."""
        signed = smime.sign(payload, self.cert, self.key)
        if self.server_cert is not None:
            return smime.encrypt(signed, self.server_cert)
        return signed


def load_signer(certificate: Path, key: Path, capath: Optional[Path] = None, server_cert: Optional[Path] = None,
                min_lifetime: float = 86400.0) -> Signer:
    """Load and check the credentials; raises :class:`CredentialError` with the reason and the file."""
    try:
        cert, private_key = load_key_pair(certificate, key)
    except X509Error as exc:
        raise CredentialError(str(exc)) from exc
    if not isinstance(private_key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise CredentialError(f"{key}: S/MIME signing needs an RSA or EC key")
    try:
        check_validity(cert, margin=timedelta(seconds=min_lifetime), label=f"{certificate} ({subject_dn(cert)})")
    except X509Error as exc:
        raise CredentialError(str(exc)) from exc
    warnings: List[str] = []
    if capath is not None and capath.is_dir():
        try:
            verify_chain(cert, capath)
        except X509Error as exc:
            # the receiver will reject our messages, but the CA directory may simply be stale here
            warnings.append(f"{certificate}: does not verify against {capath}: {exc}")
    server = None
    if server_cert is not None:
        problem = smime.encryption_problem()
        if problem is not None:
            raise CredentialError(f"server_cert: {server_cert}: cannot encrypt for it: {problem}")
        server = load_server_cert(server_cert, cert, capath)
    return Signer(cert=cert, key=private_key, server_cert=server, warnings=warnings)


def load_server_cert(path: Path, host_cert: cx509.Certificate, capath: Optional[Path]) -> cx509.Certificate:
    """The encryption target: readable, in date, not our own certificate, trusted by ``capath``."""
    try:
        server = load_certificate(path)
        check_validity(server, label=f"{path} ({subject_dn(server)})")
    except X509Error as exc:
        raise CredentialError(f"server_cert: {exc}") from exc
    if server.fingerprint(_SHA256) == host_cert.fingerprint(_SHA256):
        raise CredentialError(f"server_cert: {path} is the host certificate itself; it must be the receiver's")
    if not isinstance(server.public_key(), rsa.RSAPublicKey):
        raise CredentialError(f"server_cert: {path}: S/MIME encryption needs an RSA certificate")
    if capath is not None:
        try:
            verify_chain(server, capath)
        except X509Error as exc:
            raise CredentialError(f"server_cert: {path}: {exc}") from exc
    return server


def ca_bundle(capath: Path) -> bytes:
    """The CA certificates of a grid CA directory as one PEM bundle (for TLS libraries wanting a file)."""
    try:
        store = trust_store(capath)
    except X509Error as exc:
        raise CredentialError(f"capath: {exc}") from exc
    return b"".join(ca.public_bytes(serialization.Encoding.PEM) for ca in store.cas)


_SHA256 = hashes.SHA256()
