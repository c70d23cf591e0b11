"""A test PKI on ``cryptography``: CAs, host/user/server certificates, CRLs and grid-style CA directories.

Typical use::

    root = CertificateAuthority("/DC=org/DC=example/CN=Test Root CA")
    ca = root.intermediate("/DC=org/DC=example/CN=Test Issuing CA")        # optional
    host = ca.issue("/DC=org/DC=example/CN=appdb.example.org")             # no S/MIME EKU
    paths = host.write(tmp_path / "host")                                   # hostcert.pem / hostkey.pem
    ca.revoke(host)                                                          # appears in the next CRL
    write_ca_directory(tmp_path / "certificates", [root, ca])               # <hash>.0 + <hash>.r0

Profiles (``profile=``): ``host`` (serverAuth+clientAuth, like IGTF host certificates and the AppDB
marketplace endorser: *no* emailProtection), ``server`` (serverAuth), ``user`` (clientAuth+emailProtection),
``smime`` (emailProtection), ``client`` (clientAuth), ``none`` (no EKU). ``host``/``server`` get the SANs
``localhost``, ``127.0.0.1``, ``::1`` (plus the CN when it looks like a host name) unless ``sans`` is given.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Union

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = Union[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey]
DEFAULT_SANS = ("localhost", "127.0.0.1", "::1")

_PROFILES = {
    "host": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
    "server": [ExtendedKeyUsageOID.SERVER_AUTH],
    "client": [ExtendedKeyUsageOID.CLIENT_AUTH],
    "user": [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION],
    "smime": [ExtendedKeyUsageOID.EMAIL_PROTECTION],
    "none": [],
}


def new_key(key_type: str = "rsa") -> PrivateKey:
    """A fresh private key: ``rsa`` (2048 bits, works everywhere incl. S/MIME encryption) or ``ec`` (P-256)."""
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unknown key type {key_type!r} (rsa or ec)")


#: the attribute names of OpenSSL's one-line ("slash") DN form used by the grid
_OIDS = {"DC": NameOID.DOMAIN_COMPONENT, "C": NameOID.COUNTRY_NAME, "ST": NameOID.STATE_OR_PROVINCE_NAME,
         "L": NameOID.LOCALITY_NAME, "O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
         "CN": NameOID.COMMON_NAME, "emailAddress": NameOID.EMAIL_ADDRESS, "UID": NameOID.USER_ID,
         "serialNumber": NameOID.SERIAL_NUMBER}
_NAMES = {oid: key for key, oid in _OIDS.items()}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def slash_dn(name: x509.Name) -> str:
    """``/DC=org/CN=host``: one ``/KEY=value`` per attribute, most significant first, nothing escaped."""
    return "".join(f"/{_NAMES.get(attr.oid, attr.oid.dotted_string)}={attr.value!s}" for attr in name)


def _name(dn: Union[str, x509.Name]) -> x509.Name:
    """A name from the slash form; a segment that is not ``KEY=value`` continues the previous value (grid
    convention: ``/CN=host/h.example.org``)."""
    if isinstance(dn, x509.Name):
        return dn
    if not dn.startswith("/"):
        raise ValueError(f"not a slash-form DN: {dn!r}")
    pairs: List[List[str]] = []
    for segment in dn[1:].split("/"):
        key, sep, value = segment.partition("=")
        if sep and key in _OIDS:
            pairs.append([key, value])
        elif pairs:
            pairs[-1][1] += "/" + segment
        else:
            raise ValueError(f"DN {dn!r}: {segment!r} is not KEY=value")
    return x509.Name([x509.RelativeDistinguishedName([x509.NameAttribute(_OIDS[k], v)]) for k, v in pairs])


def _general_name(value: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(value))
    except ValueError:
        pass
    if value.startswith("mailto:") or "@" in value:
        return x509.RFC822Name(value.removeprefix("mailto:"))
    if value.startswith(("http://", "https://")):
        return x509.UniformResourceIdentifier(value)
    return x509.DNSName(value)


@dataclass
class CredentialFiles:
    cert: Path
    key: Path
    chain: Optional[Path] = None  # intermediates (not the root), when there are any


@dataclass
class Credential:
    """A certificate with its private key and the intermediate CAs above it (root excluded)."""

    cert: x509.Certificate
    key: PrivateKey
    chain: List[x509.Certificate] = field(default_factory=list)

    @property
    def dn(self) -> str:
        return slash_dn(self.cert.subject)

    @property
    def issuer_dn(self) -> str:
        return slash_dn(self.cert.issuer)

    @property
    def serial(self) -> int:
        return self.cert.serial_number

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def chain_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)

    def key_pem(self, password: Optional[bytes] = None) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption())
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)

    def write(self, directory: Union[str, Path], cert_name: str = "hostcert.pem", key_name: str = "hostkey.pem",
              password: Optional[bytes] = None) -> CredentialFiles:
        """Write certificate (0644), key (0600) and, if any, ``chain.pem`` into ``directory``."""
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = target / cert_name, target / key_name
        cert_path.write_bytes(self.cert_pem())
        key_path.write_bytes(self.key_pem(password))
        os.chmod(key_path, 0o600)
        chain_path = None
        if self.chain:
            chain_path = target / "chain.pem"
            chain_path.write_bytes(self.chain_pem())
        return CredentialFiles(cert_path, key_path, chain_path)

    def pkcs12(self, password: Optional[bytes] = None, name: bytes = b"fedcloud-site") -> bytes:
        """PKCS#12 (e.g. for a Java keystore) with key, certificate and intermediates."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption())
        return pkcs12.serialize_key_and_certificates(name, self.key, self.cert, self.chain or None, encryption)


class CertificateAuthority:
    """A root CA, or an intermediate one when ``parent`` is given; it issues certificates and CRLs."""

    def __init__(self, dn: Union[str, x509.Name] = "/DC=org/DC=example/CN=Test Root CA", *,
                 parent: Optional[CertificateAuthority] = None, key_type: str = "rsa",
                 not_before: Optional[datetime] = None, not_after: Optional[datetime] = None,
                 path_length: Optional[int] = None) -> None:
        now = utcnow()
        self.key: PrivateKey = new_key(key_type)
        self.parent = parent
        self.revoked: List[x509.RevokedCertificate] = []
        self._crl_number = 0
        name = _name(dn)
        signer_key = parent.key if parent else self.key
        issuer_name = parent.cert.subject if parent else name
        builder = (x509.CertificateBuilder()
                   .subject_name(name).issuer_name(issuer_name)
                   .public_key(self.key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(not_before or now - timedelta(days=1))
                   .not_valid_after(not_after or now + timedelta(days=3650))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                                key_encipherment=False, data_encipherment=False,
                                                key_agreement=False, key_cert_sign=True, crl_sign=True,
                                                encipher_only=False, decipher_only=False), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False))
        if parent:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(parent.key.public_key()), critical=False)
        self.cert: x509.Certificate = builder.sign(signer_key, hashes.SHA256())

    @property
    def dn(self) -> str:
        return slash_dn(self.cert.subject)

    @property
    def chain(self) -> List[x509.Certificate]:
        """This CA and its parents up to (excluding) the root: what a leaf sends as intermediates."""
        result: List[x509.Certificate] = []
        ca: Optional[CertificateAuthority] = self
        while ca is not None and ca.parent is not None:
            result.append(ca.cert)
            ca = ca.parent
        return result

    @property
    def root(self) -> CertificateAuthority:
        return self.parent.root if self.parent else self

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def intermediate(self, dn: Union[str, x509.Name], **kwargs) -> CertificateAuthority:
        """A subordinate CA signed by this one."""
        return CertificateAuthority(dn, parent=self, **kwargs)

    def issue(self, dn: Union[str, x509.Name], *, profile: str = "host", sans: Optional[Sequence[str]] = None,
              not_before: Optional[datetime] = None, not_after: Optional[datetime] = None, days: int = 365,
              key_usage: Optional[x509.KeyUsage] = None,
              extended_key_usage: Optional[Sequence[x509.ObjectIdentifier]] = None,
              key: Optional[PrivateKey] = None, key_type: str = "rsa", serial: Optional[int] = None,
              issuer_key: Optional[PrivateKey] = None) -> Credential:
        """An end-entity certificate. ``not_after`` in the past makes an expired one; ``issuer_key`` (a
        different key) makes one whose signature does not verify."""
        now = utcnow()
        name = _name(dn)
        key = key or new_key(key_type)
        if profile not in _PROFILES:
            raise ValueError(f"unknown profile {profile!r}: {sorted(_PROFILES)}")
        ekus = list(extended_key_usage) if extended_key_usage is not None else _PROFILES[profile]
        if sans is None:
            sans = list(DEFAULT_SANS) if profile in ("host", "server") else []
            common = [a.value for a in name.get_attributes_for_oid(NameOID.COMMON_NAME)]
            if profile in ("host", "server") and common:
                host = str(common[-1]).rsplit("/", 1)[-1]
                if "." in host and " " not in host and host not in sans:
                    sans.insert(0, host)
        usage = key_usage or x509.KeyUsage(
            digital_signature=True, content_commitment=profile in ("user", "smime"),
            key_encipherment=isinstance(key, rsa.RSAPrivateKey), data_encipherment=False,
            key_agreement=isinstance(key, ec.EllipticCurvePrivateKey), key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False)
        builder = (x509.CertificateBuilder()
                   .subject_name(name).issuer_name(self.cert.subject)
                   .public_key(key.public_key())
                   .serial_number(serial or x509.random_serial_number())
                   .not_valid_before(not_before or now - timedelta(hours=1))
                   .not_valid_after(not_after or now + timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(usage, critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                                  critical=False))
        if ekus:
            builder = builder.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName([_general_name(s) for s in sans]),
                                            critical=False)
        cert = builder.sign(issuer_key or self.key, hashes.SHA256())
        return Credential(cert=cert, key=key, chain=self.chain)

    def host(self, fqdn: str, dn_prefix: str = "/DC=org/DC=example", **kwargs) -> Credential:
        """A host certificate ``<dn_prefix>/CN=<fqdn>`` (profile ``host``)."""
        return self.issue(f"{dn_prefix}/CN={fqdn}", profile="host", **kwargs)

    def server(self, dn: str = "/DC=org/DC=example/CN=localhost", **kwargs) -> Credential:
        """A TLS server certificate for localhost / 127.0.0.1 / ::1."""
        return self.issue(dn, profile="server", **kwargs)

    def user(self, dn: str, **kwargs) -> Credential:
        """A personal certificate (clientAuth + emailProtection)."""
        return self.issue(dn, profile="user", **kwargs)

    def revoke(self, what: Union[Credential, x509.Certificate, int], when: Optional[datetime] = None) -> None:
        """Put a certificate (or serial) on this CA's CRL."""
        serial = what.serial if isinstance(what, Credential) else (
            what.serial_number if isinstance(what, x509.Certificate) else int(what))
        self.revoked.append(x509.RevokedCertificateBuilder().serial_number(serial)
                            .revocation_date(when or utcnow() - timedelta(minutes=1)).build())

    def crl(self, last_update: Optional[datetime] = None, next_update: Optional[datetime] = None,
            days: int = 7) -> x509.CertificateRevocationList:
        """A CRL of the revocations so far; ``next_update`` in the past makes a stale one."""
        now = utcnow()
        self._crl_number += 1
        builder = (x509.CertificateRevocationListBuilder()
                   .issuer_name(self.cert.subject)
                   .last_update(last_update or now - timedelta(minutes=5))
                   .next_update(next_update or now + timedelta(days=days))
                   .add_extension(x509.CRLNumber(self._crl_number), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                                  critical=False))
        for revoked in self.revoked:
            builder = builder.add_revoked_certificate(revoked)
        return builder.sign(self.key, hashes.SHA256())

    def crl_pem(self, **kwargs) -> bytes:
        return self.crl(**kwargs).public_bytes(serialization.Encoding.PEM)

    def write_cert(self, path: Union[str, Path]) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.cert_pem())
        return target


def subject_hash(cert: x509.Certificate) -> str:
    """OpenSSL's subject name hash (``openssl x509 -hash``), the base of ``<hash>.0`` file names."""
    result = subprocess.run(["openssl", "x509", "-noout", "-hash"],
                            input=cert.public_bytes(serialization.Encoding.PEM),
                            capture_output=True, check=True, timeout=30)
    return result.stdout.decode().strip()


def write_ca_directory(directory: Union[str, Path], cas: Iterable[CertificateAuthority], crls: bool = True,
                       crl_options: Optional[dict] = None) -> Path:
    """A grid CA directory: ``<hash>.N`` per CA certificate (as ``openssl rehash`` names them) and, when
    ``crls``, ``<hash>.rN`` with each CA's current CRL. Existing files of the same CA are replaced."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    for ca in cas:
        digest = subject_hash(ca.cert)
        index = _slot(target, digest, ca.cert)
        (target / f"{digest}.{index}").write_bytes(ca.cert_pem())
        if crls:
            (target / f"{digest}.r{index}").write_bytes(ca.crl_pem(**(crl_options or {})))
    return target


def write_crl(directory: Union[str, Path], ca: CertificateAuthority, **crl_options) -> Path:
    """(Re)write the ``<hash>.rN`` CRL of ``ca`` in a CA directory (e.g. after :meth:`revoke`)."""
    target = Path(directory)
    digest = subject_hash(ca.cert)
    index = _slot(target, digest, ca.cert)
    path = target / f"{digest}.r{index}"
    path.write_bytes(ca.crl_pem(**crl_options))
    return path


def _slot(directory: Path, digest: str, cert: x509.Certificate) -> int:
    """The ``N`` of ``<hash>.N`` holding ``cert``, or the first free one (hash collisions)."""
    pem = cert.public_bytes(serialization.Encoding.PEM)
    index = 0
    while (directory / f"{digest}.{index}").exists():
        if (directory / f"{digest}.{index}").read_bytes() == pem:
            return index
        index += 1
    return index


def random_serial() -> int:
    return secrets.randbits(63) | 1
