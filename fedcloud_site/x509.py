"""X.509 helpers shared by the daemons: PEM loading, grid-style DNs, CA-directory trust store, chain checks.

Chain verification is our own small path builder on ``cryptography`` rather than
``cryptography.x509.verification`` or ``openssl verify``:

* ``cryptography.x509.verification`` enforces the Web PKI profile (server/client EKU, SAN required) and
  has no CRL support; grid endorsers sign with *host* certificates without the S/MIME purpose, and grid CA
  directories rely on CRLs.
* ``openssl verify -crl_check`` fails when a CA has no CRL at all, while grid practice (and the peers:
  atrope, cloudkeeper, ssm) is "honour the CRL when fetch-crl put one there"; it also costs a subprocess per
  check and reports errors as free text.

What :meth:`TrustStore.verify` checks, per certificate of the path leaf -> trusted CA: the issuer name and
signature (``verify_directly_issued_by``), the validity period, ``basicConstraints CA:TRUE`` and path length
and ``keyCertSign`` (when key usage is present) on every issuer, unknown *critical* extensions (rejected,
like OpenSSL; name and policy constraints are not evaluated, so a critical one is rejected too), and
revocation against the newest CRL of the issuer when the directory has one: the CRL's signature must be
valid and it must not be past its ``nextUpdate`` (stale CRLs are errors, as in OpenSSL, unless
``allow_stale_crls``). No key-usage purpose (S/MIME, server, client) is required of the leaf.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

try:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
except ImportError:  # cryptography < 40 (Debian 12: 38, RHEL 9: 36)
    from cryptography.hazmat.primitives.asymmetric.types import PRIVATE_KEY_TYPES as PrivateKeyTypes  # type: ignore

from .errors import FedcloudSiteError
from .timeutil import utcnow

PathLike = Union[str, "os.PathLike[str]"]


class X509Error(FedcloudSiteError):
    """A certificate, key, CRL or DN problem; the message names the file or certificate."""


class VerificationError(X509Error):
    """A certificate chain did not verify against the trust store."""


# --------------------------------------------------------------------------- loading

def load_certificates(source: Union[PathLike, bytes]) -> List[x509.Certificate]:
    """All PEM certificates of a file (or bytes), in order; an error if there are none."""
    data, label = _read(source)
    try:
        certs = load_pem_certificates(data)
    except ValueError as exc:
        raise X509Error(f"{label}: no readable PEM certificate ({exc})") from exc
    return certs


def load_certificate(source: Union[PathLike, bytes]) -> x509.Certificate:
    """The first PEM certificate of a file (or bytes)."""
    return load_certificates(source)[0]


def load_private_key(source: Union[PathLike, bytes], password: Optional[bytes] = None) -> PrivateKeyTypes:
    """A PEM private key (PKCS#1, PKCS#8 or SEC1), optionally encrypted."""
    data, label = _read(source)
    try:
        return serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError) as exc:
        raise X509Error(f"{label}: not a readable PEM private key ({exc})") from exc


def load_crl(source: Union[PathLike, bytes]) -> x509.CertificateRevocationList:
    """A CRL, PEM or DER."""
    data, label = _read(source)
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise X509Error(f"{label}: not a readable CRL ({exc})") from exc


def _read(source: Union[PathLike, bytes]) -> Tuple[bytes, str]:
    if isinstance(source, bytes):
        return source, "<data>"
    path = Path(source)
    try:
        return path.read_bytes(), str(path)
    except OSError as exc:
        raise X509Error(f"{path}: cannot read: {exc.strerror or exc}") from exc


def key_matches_certificate(key: PrivateKeyTypes, cert: x509.Certificate) -> bool:
    """True when ``key`` is the private half of the certificate's public key."""
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    return key.public_key().public_bytes(enc, fmt) == cert.public_key().public_bytes(enc, fmt)


def load_key_pair(cert_path: PathLike, key_path: PathLike,
                  password: Optional[bytes] = None) -> Tuple[x509.Certificate, PrivateKeyTypes]:
    """Certificate and key from PEM files, checked to belong together."""
    cert = load_certificate(cert_path)
    key = load_private_key(key_path, password)
    if not key_matches_certificate(key, cert):
        raise X509Error(f"{key_path}: private key does not match the certificate {cert_path} "
                        f"({subject_dn(cert)})")
    return cert, key


# --------------------------------------------------------------------------- validity

def not_before(cert: x509.Certificate) -> datetime:
    return utc_attribute(cert, "not_valid_before")


def not_after(cert: x509.Certificate) -> datetime:
    return utc_attribute(cert, "not_valid_after")


def expires_within(cert: x509.Certificate, margin: timedelta, now: Optional[datetime] = None) -> bool:
    """True when the certificate is expired or expires within ``margin`` from ``now``."""
    return not_after(cert) <= (now or utcnow()) + margin


def check_validity(cert: x509.Certificate, margin: timedelta = timedelta(0), now: Optional[datetime] = None,
                   label: str = "") -> None:
    """Raise :class:`X509Error` unless the certificate is valid now and for ``margin`` more."""
    now = now or utcnow()
    name = label or subject_dn(cert)
    if not_before(cert) > now:
        raise X509Error(f"certificate {name} is not valid before {not_before(cert).isoformat()}")
    if not_after(cert) <= now:
        raise X509Error(f"certificate {name} expired at {not_after(cert).isoformat()}")
    if not_after(cert) <= now + margin:
        raise X509Error(f"certificate {name} expires at {not_after(cert).isoformat()}, within {margin}")


# --------------------------------------------------------------------------- DNs

_SHORT_NAMES: Dict[x509.ObjectIdentifier, str] = {
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COMMON_NAME: "CN",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.USER_ID: "UID",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.STREET_ADDRESS: "street",
    NameOID.TITLE: "title",
    NameOID.GIVEN_NAME: "GN",
    NameOID.SURNAME: "SN",
    x509.ObjectIdentifier("2.5.4.43"): "initials",  # NameOID.INITIALS (cryptography >= 39)
    NameOID.PSEUDONYM: "pseudonym",
    NameOID.GENERATION_QUALIFIER: "generationQualifier",
    NameOID.DN_QUALIFIER: "dnQualifier",
    NameOID.POSTAL_CODE: "postalCode",
}
_ALIASES: Dict[str, x509.ObjectIdentifier] = {name.lower(): oid for oid, name in _SHORT_NAMES.items()}
_ALIASES.update({"e": NameOID.EMAIL_ADDRESS, "email": NameOID.EMAIL_ADDRESS, "userid": NameOID.USER_ID,
                 "s": NameOID.STATE_OR_PROVINCE_NAME, "g": NameOID.GIVEN_NAME,
                 "domaincomponent": NameOID.DOMAIN_COMPONENT, "commonname": NameOID.COMMON_NAME})
_OID_RE = re.compile(r"^\d+(\.\d+)+$")


def dn_to_slash(name: x509.Name) -> str:
    """``/DC=org/DC=example/CN=host/h.example.org``: OpenSSL's one-line (grid) form, most significant first.

    Like ``X509_NAME_oneline`` every attribute gets its own ``/`` (also inside multi-valued RDNs) and
    values are not escaped.
    """
    parts = []
    for attr in name:
        key = _SHORT_NAMES.get(attr.oid, attr.oid.dotted_string)
        value = attr.value if isinstance(attr.value, str) else attr.value.hex()
        parts.append(f"/{key}={value}")
    return "".join(parts)


def _attribute_oid(key: str) -> Optional[x509.ObjectIdentifier]:
    oid = _ALIASES.get(key.strip().lower())
    if oid is None and _OID_RE.match(key.strip()):
        oid = x509.ObjectIdentifier(key.strip())
    return oid


def slash_to_name(dn: str) -> x509.Name:
    """The inverse of :func:`dn_to_slash`. A ``/`` segment that is not ``KEY=value`` belongs to the
    previous value (``/CN=host/h.example.org``)."""
    if not dn.startswith("/"):
        raise X509Error(f"not a slash-form DN (must start with '/'): {dn!r}")
    attrs: List[List[str]] = []
    for segment in dn[1:].split("/"):
        key, sep, value = segment.partition("=")
        if sep and _attribute_oid(key) is not None:
            attrs.append([key, value])
        elif attrs:
            attrs[-1][1] += "/" + segment
        else:
            raise X509Error(f"DN {dn!r}: {segment!r} is not KEY=value")
    result = []
    for key, value in attrs:
        oid = _attribute_oid(key)
        assert oid is not None
        try:
            result.append(x509.RelativeDistinguishedName([x509.NameAttribute(oid, value)]))
        except ValueError as exc:
            raise X509Error(f"DN {dn!r}: {key}={value!r}: {exc}") from exc
    return x509.Name(result)


_CANONICAL_NAMES = frozenset(_SHORT_NAMES.values())


def _already_canonical(dn: str) -> bool:
    """True when every recognised attribute name in ``dn`` is spelled canonically (the common case)."""
    if not dn.startswith("/"):
        return False
    for index, segment in enumerate(dn[1:].split("/")):
        key, sep, _ = segment.partition("=")
        if sep and _attribute_oid(key) is not None:
            if key not in _CANONICAL_NAMES:
                return False
        elif index == 0:
            return False
    return True


def normalize_dn(dn: str) -> str:
    """Canonical slash form: attribute names unified (``E``/``Email`` -> ``emailAddress``), values kept."""
    dn = dn.strip()
    if _already_canonical(dn):  # fast path (no cryptography objects): the result would be ``dn`` itself
        return dn
    return dn_to_slash(slash_to_name(dn))


#: a parsed DN: its RDNs in order, each a sorted tuple of (attribute OID, value)
DNStructure = Tuple[Tuple[Tuple[str, str], ...], ...]


def dn_structure(name: Union[x509.Name, str]) -> DNStructure:
    """A DN as a comparable structure: RDN by RDN, each RDN's (OID, value) pairs.

    A certificate's :class:`x509.Name` keeps its real RDN structure (a multi-valued RDN is one RDN with several
    pairs; a value may contain ``/``). A slash-form string is parsed by :func:`slash_to_name`, which only ever
    yields single-valued RDNs, and never a value holding ``/KEY=``: so a certificate whose ``O`` value is
    ``Hosts/CN=x`` or whose RDN is ``O=Hosts+CN=x`` can never equal a slash-form DN.
    """
    parsed = slash_to_name(name.strip()) if isinstance(name, str) else name
    rdns = []
    for rdn in parsed.rdns:
        pairs = tuple(sorted((attr.oid.dotted_string,
                              attr.value if isinstance(attr.value, str) else "#" + attr.value.hex())
                             for attr in rdn))
        rdns.append(pairs)
    return tuple(rdns)


def dn_matches(name: Union[x509.Name, str], dn: Union[x509.Name, str]) -> bool:
    """True when both denote the same DN, compared attribute by attribute (OID and exact value, RDN
    structure), never as rendered strings. An unparseable slash-form DN matches nothing."""
    try:
        return dn_structure(name) == dn_structure(dn)
    except X509Error:
        return False


def dn_equal(first: str, second: str) -> bool:
    """Same DN, both in slash form (attribute-name aliases allowed; values compare exactly)."""
    return dn_matches(first, second)


def subject_dn(cert: x509.Certificate) -> str:
    return dn_to_slash(cert.subject)


def issuer_dn(cert: x509.Certificate) -> str:
    return dn_to_slash(cert.issuer)


# --------------------------------------------------------------------------- trust store

_HASHED_CERT = re.compile(r"^[0-9a-f]{8}\.\d+$")
_HASHED_CRL = re.compile(r"^[0-9a-f]{8}\.r\d+$")


@dataclass
class TrustStore:
    """Trusted CA certificates and their CRLs, e.g. loaded from a grid CA directory."""

    cas: List[x509.Certificate] = field(default_factory=list)
    crls: List[x509.CertificateRevocationList] = field(default_factory=list)
    source: str = "<memory>"
    problems: List[str] = field(default_factory=list)  # unreadable files skipped while loading

    @classmethod
    def from_directory(cls, path: PathLike) -> TrustStore:
        """Load ``<hash>.N`` CA certificates (and ``*.pem``/``*.crt``) and ``<hash>.rN`` CRLs of ``path``."""
        directory = Path(path)
        if not directory.is_dir():
            raise X509Error(f"{directory}: CA directory does not exist")
        store = cls(source=str(directory))
        seen = set()
        for entry in sorted(directory.iterdir()):
            name = entry.name
            try:
                if _HASHED_CRL.match(name):
                    store.crls.append(load_crl(entry))
                elif _HASHED_CERT.match(name) or name.endswith((".pem", ".crt")):
                    for cert in load_certificates(entry):
                        fingerprint = cert.fingerprint(_SHA256)
                        if fingerprint not in seen:
                            seen.add(fingerprint)
                            store.cas.append(cert)
            except X509Error as exc:
                store.problems.append(str(exc))
        if not store.cas:
            raise X509Error(f"{directory}: no CA certificates (<hash>.0 files; run 'openssl rehash')")
        return store

    def add_ca(self, cert: x509.Certificate) -> None:
        self.cas.append(cert)

    def add_crl(self, crl: x509.CertificateRevocationList) -> None:
        self.crls.append(crl)

    def verify(self, leaf: x509.Certificate, untrusted: Sequence[x509.Certificate] = (),
               now: Optional[datetime] = None, allow_stale_crls: bool = False) -> List[x509.Certificate]:
        """The verified path ``[leaf, intermediates..., trusted CA]`` or :class:`VerificationError`."""
        now = now or utcnow()
        trusted = {c.fingerprint(_SHA256) for c in self.cas}
        untrusted = [c for c in untrusted if c.fingerprint(_SHA256) != leaf.fingerprint(_SHA256)]
        errors: List[str] = []
        path = self._build([leaf], untrusted, trusted, now, errors)
        if path is None:
            why = "; ".join(dict.fromkeys(errors)) or f"issuer {issuer_dn(leaf)} is not a trusted CA"
            raise VerificationError(f"certificate {subject_dn(leaf)}: {why}")
        self._check_revocation(path, now, allow_stale_crls)
        return path

    def _build(self, path: List[x509.Certificate], untrusted: Sequence[x509.Certificate], trusted: set,
               now: datetime, errors: List[str]) -> Optional[List[x509.Certificate]]:
        cert = path[-1]
        problem = _own_problem(cert, now)
        if problem:
            errors.append(problem)
            return None
        if len(path) > 10:
            errors.append("certificate path too long")
            return None
        candidates = [c for c in self.cas if c.subject == cert.issuer]
        candidates += [c for c in untrusted if c.subject == cert.issuer and c not in path]
        if not candidates:
            of = f" (issuer of {subject_dn(cert)})" if len(path) > 1 else ""
            errors.append(f"issuer {issuer_dn(cert)}{of} is not a trusted CA")
            return None
        for issuer in candidates:
            try:
                verify_directly_issued_by(cert, issuer)
            except (ValueError, TypeError, InvalidSignature) as exc:
                errors.append(f"signature of {subject_dn(cert)} does not verify with the key of "
                              f"{subject_dn(issuer)} ({exc or 'bad signature'})")
                continue
            problem = _issuer_problem(issuer, issued_below=len(path) - 1)
            if problem:
                errors.append(problem)
                continue
            if issuer.fingerprint(_SHA256) in trusted:
                anchor_problem = _own_problem(issuer, now)
                if anchor_problem:
                    errors.append(anchor_problem)
                    continue
                anchored = path + [issuer]
                if issuer.issuer != issuer.subject:
                    # a trusted intermediate: prefer the full path to its root (whose CRL may revoke it)
                    longer = self._build(anchored, untrusted, trusted, now, [])
                    if longer is not None:
                        return longer
                return anchored
            found = self._build(path + [issuer], untrusted, trusted, now, errors)
            if found is not None:
                return found
        return None

    def _check_revocation(self, path: List[x509.Certificate], now: datetime, allow_stale: bool) -> None:
        for cert, issuer in zip(path, path[1:]):
            crl = self._newest_crl(issuer)
            if crl is None:
                continue
            next_update = utc_attribute(crl, "next_update")
            if next_update is not None and next_update < now and not allow_stale:
                raise VerificationError(f"certificate {subject_dn(cert)}: the CRL of {subject_dn(issuer)} "
                                        f"expired at {next_update.isoformat()} (run fetch-crl)")
            revoked = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            if revoked is not None:
                raise VerificationError(f"certificate {subject_dn(cert)} (serial {cert.serial_number:#x}) "
                                        f"was revoked by {subject_dn(issuer)} at "
                                        f"{utc_attribute(revoked, 'revocation_date').isoformat()}")

    def _newest_crl(self, issuer: x509.Certificate) -> Optional[x509.CertificateRevocationList]:
        good = []
        for crl in self.crls:
            if crl.issuer != issuer.subject:
                continue
            try:
                if crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                    good.append(crl)
            except (TypeError, ValueError):
                continue
        if not good:
            return None
        return max(good, key=lambda c: utc_attribute(c, "last_update"))


_SHA256 = hashes.SHA256()


# --------------------------------------------------------------------------- older cryptography
# The distributions' cryptography is older than the one pip installs (Debian 12: 38, RHEL 9: 36):
# these helpers use the newer API when it is there and an equivalent otherwise.

_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


def load_pem_certificates(data: bytes) -> List[x509.Certificate]:
    """``x509.load_pem_x509_certificates`` (cryptography >= 39): every PEM certificate; ValueError if none."""
    loader = getattr(x509, "load_pem_x509_certificates", None)
    if loader is not None:
        return list(loader(data))
    blocks = _PEM_CERTIFICATE.findall(data)
    if not blocks:
        raise ValueError("no PEM certificate found")
    return [x509.load_pem_x509_certificate(block) for block in blocks]


def utc_attribute(obj: object, name: str) -> Any:
    """``obj.<name>_utc`` (cryptography >= 42), else the naive UTC ``obj.<name>`` made aware (or None)."""
    value = getattr(obj, f"{name}_utc", None)
    if value is not None or hasattr(type(obj), f"{name}_utc"):
        return value
    naive = getattr(obj, name)
    return naive.replace(tzinfo=timezone.utc) if naive is not None else naive


def verify_directly_issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    """``cert.verify_directly_issued_by(issuer)`` (cryptography >= 40): issuer name and signature.

    Raises ValueError (names differ), TypeError (unsupported key) or InvalidSignature.
    """
    method = getattr(cert, "verify_directly_issued_by", None)
    if method is not None:
        method(issuer)
        return
    if cert.issuer != issuer.subject:
        raise ValueError("issuer name does not match the issuer certificate's subject")
    key = issuer.public_key()
    algorithm = cert.signature_hash_algorithm
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), algorithm)  # type: ignore[arg-type]
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algorithm))  # type: ignore[arg-type]
    elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        key.verify(cert.signature, cert.tbs_certificate_bytes)
    else:
        raise TypeError(f"unsupported issuer key type {type(key).__name__}")
_HANDLED_CRITICAL = {ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE, ExtensionOID.EXTENDED_KEY_USAGE,
                     ExtensionOID.SUBJECT_ALTERNATIVE_NAME, ExtensionOID.CERTIFICATE_POLICIES,
                     ExtensionOID.SUBJECT_KEY_IDENTIFIER, ExtensionOID.AUTHORITY_KEY_IDENTIFIER}


def _own_problem(cert: x509.Certificate, now: datetime) -> Optional[str]:
    if not_before(cert) > now:
        return f"certificate {subject_dn(cert)} is not valid before {not_before(cert).isoformat()}"
    if not_after(cert) < now:
        return f"certificate {subject_dn(cert)} expired at {not_after(cert).isoformat()}"
    for ext in cert.extensions:
        if ext.critical and ext.oid not in _HANDLED_CRITICAL:
            name = getattr(ext.oid, "_name", None) or ext.oid.dotted_string
            return f"certificate {subject_dn(cert)} has an unsupported critical extension {name}"
    return None


def _issuer_problem(issuer: x509.Certificate, issued_below: int) -> Optional[str]:
    """Why ``issuer`` may not sign a path with ``issued_below`` intermediate CAs below it, or None."""
    try:
        constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        if issuer.version == x509.Version.v1 and issuer.issuer == issuer.subject:
            return None  # old v1 self-signed roots are accepted as trust anchors, as OpenSSL does
        return f"{subject_dn(issuer)} is not a CA (no basicConstraints)"
    if not constraints.ca:
        return f"{subject_dn(issuer)} is not a CA (basicConstraints CA:FALSE)"
    if constraints.path_length is not None and issued_below > constraints.path_length:
        return f"{subject_dn(issuer)}: path length constraint {constraints.path_length} exceeded"
    try:
        usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    if not usage.key_cert_sign:
        return f"{subject_dn(issuer)} may not sign certificates (key usage lacks keyCertSign)"
    return None


# --------------------------------------------------------------------------- cached loading

_cache_lock = threading.Lock()
_cache: Dict[str, Tuple[tuple, TrustStore]] = {}


def _directory_signature(directory: Path) -> tuple:
    entries = []
    with os.scandir(directory) as scan:
        for entry in scan:
            try:
                info = entry.stat()
            except OSError:
                continue
            entries.append((entry.name, info.st_mtime_ns, info.st_size))
    return tuple(sorted(entries))


def trust_store(path: PathLike) -> TrustStore:
    """:meth:`TrustStore.from_directory`, cached until a file of the directory changes (fetch-crl runs)."""
    directory = Path(path)
    if not directory.is_dir():
        raise X509Error(f"{directory}: CA directory does not exist")
    signature = _directory_signature(directory)
    key = str(directory.resolve())
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None and cached[0] == signature:
            return cached[1]
    store = TrustStore.from_directory(directory)
    with _cache_lock:
        _cache[key] = (signature, store)
    return store


def verify_chain(leaf: x509.Certificate, capath: PathLike, untrusted: Iterable[x509.Certificate] = (),
                 now: Optional[datetime] = None, allow_stale_crls: bool = False) -> List[x509.Certificate]:
    """Verify ``leaf`` (with ``untrusted`` intermediates) against the CA directory ``capath``."""
    return trust_store(capath).verify(leaf, list(untrusted), now=now, allow_stale_crls=allow_stale_crls)
