"""The broker's certificate, checked again after the TLS handshake: host name and revocation.

The TLS library verifies that the broker's certificate chains to a CA of
``capath`` (stomp.py gets them as one bundle), but it reads no CRLs; and
stomp.py 8.0 (Debian 12) even leaves the host name unchecked (its
``SSLContext`` keeps ``check_hostname`` off).  So once the handshake is done,
before a single frame is sent, the certificates the broker presented are
checked with :class:`fedcloud_site.x509.TrustStore` (which honours the CRLs
that fetch-crl keeps in the CA directory, and refuses an expired CRL) and the
host name is matched against the certificate's subjectAltName (its CN when
it has no DNS name, as OpenSSL does).
"""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path
from typing import Any, List

from cryptography import x509
from cryptography.x509.oid import NameOID

from ..errors import FedcloudSiteError
from ..x509 import X509Error, trust_store

_ENCODING_DER = getattr(getattr(ssl, "_ssl", None), "ENCODING_DER", 2)


class BrokerCertificateError(FedcloudSiteError):
    """The broker's certificate must not be trusted (the message says why)."""


def peer_chain(sock: Any) -> List[x509.Certificate]:
    """The certificates the peer of a TLS socket sent, its own first.

    Python 3.13 tells the chain publicly, 3.10-3.12 on the internal SSL object;
    older Pythons give the peer's own certificate only (its issuers then have
    to be in the CA directory, as grid CA directories have them).
    """
    chain: List[Any] = []
    for owner in (sock, getattr(sock, "_sslobj", None)):
        method = getattr(owner, "get_unverified_chain", None)
        if callable(method):
            try:
                chain = list(method() or [])
            except (ValueError, ssl.SSLError):
                chain = []
            if chain:
                break
    certificates = []
    for item in chain:
        der = item if isinstance(item, (bytes, bytearray)) else item.public_bytes(_ENCODING_DER)
        certificates.append(x509.load_der_x509_certificate(bytes(der)))
    if not certificates:
        der = sock.getpeercert(binary_form=True)
        if der:
            certificates.append(x509.load_der_x509_certificate(der))
    return certificates


def _dns_matches(pattern: str, host: str) -> bool:
    """RFC 6125 matching: case-insensitive, a wildcard only as the whole left-most label, for one label."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern == host:
        return True
    if not pattern.startswith("*.") or "*" in pattern[2:]:
        return False
    first, _, rest = host.partition(".")
    return bool(first) and rest == pattern[2:] and rest.count(".") >= 1


def check_hostname(cert: x509.Certificate, host: str) -> None:
    """Raise :class:`BrokerCertificateError` unless ``cert`` names ``host`` (a DNS name or an IP address)."""
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = None
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address is not None:
        matched = names is not None and address in names.get_values_for_type(x509.IPAddress)
    else:
        dns_names = names.get_values_for_type(x509.DNSName) if names is not None else []
        if not dns_names:
            dns_names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        matched = any(_dns_matches(name, host) for name in dns_names)
    if not matched:
        raise BrokerCertificateError(f"Hostname mismatch, certificate is not valid for '{host}'")


class PeerVerifier:
    """Checks a connected broker's certificate against the CA directory ``capath`` (CRLs included)."""

    def __init__(self, capath: Path) -> None:
        self.capath = Path(capath)

    def check(self, sock: Any, host: str) -> None:
        """Raise :class:`BrokerCertificateError` when the broker behind ``sock`` must not be trusted."""
        try:
            chain = peer_chain(sock)
        except (ValueError, OSError) as exc:
            raise BrokerCertificateError(f"cannot read the broker's certificate: {exc}") from exc
        if not chain:
            raise BrokerCertificateError("the broker presented no certificate")
        check_hostname(chain[0], host)
        try:
            trust_store(self.capath).verify(chain[0], chain[1:])
        except X509Error as exc:
            raise BrokerCertificateError(str(exc)) from exc


__all__ = ["BrokerCertificateError", "PeerVerifier", "check_hostname", "peer_chain"]
