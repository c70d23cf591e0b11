"""What a GLUE LDIF value or RDN may hold so that it passes ``bdii-update`` and slapd unchanged.

The BDII's ``bdii-update`` (6.0) does not handle LDIF the way RFC 2849 describes it:

* it finds entries by searching the whole text for ``dn:`` (case-sensitive), also inside values;
* it parses plain values with ``str.strip()`` (all leading/trailing white space, including TAB,
  VT, FF, and the separators U+001C-U+001F) and writes *changed* values into ``ldapmodify`` input
  unencoded, where a line break splits the value and leading white space is skipped;
* it matches the DNs we print against the DNs slapd returns as plain, lower-cased strings,
  after turning only some ``\\XX`` escapes into ``\\c`` ones: a DN with non-ASCII characters
  (which ``ldapsearch`` prints base64-encoded) or with escapes slapd spells another way is never
  matched, so its entry is never updated or deleted.

So every value goes through :func:`ldif_value`, which replaces, in this order:

1. unpaired UTF-16 surrogates (they have no UTF-8 form) with U+FFFD;
2. every control character (Unicode category Cc: U+0000-U+001F, U+007F-U+009F) with a space;
3. ``dn:`` with ``dn :`` (a space before the colon);
4. white space at both ends (``str.isspace``): removed.

A value that is empty afterwards is left out (slapd refuses empty Directory Strings).

Every ID that names an entry (RDN) or refers to one (foreign key) goes through :func:`ldif_id`:
an ID made only of ASCII letters, digits and ``. _ - : / @`` and not containing ``dn:`` is kept
as it is (what every usual ID is: UUIDs, URLs, VO names); any other ID is replaced by a readable
part (accents dropped, other characters ``_``, ``dn:`` as ``dn_``, at most 200 characters), a
``~`` and 12 hex digits of the SHA-256 of the ID: deterministic, distinct from every kept ID
(those never hold ``~``), and needing no escaping in a DN, so slapd returns it as we wrote it.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

#: characters an RDN value may hold as it is (no RFC 4514 escaping, printed unchanged by slapd)
_SAFE_ID = re.compile(r"[A-Za-z0-9._:/@-]+\Z")
_UNSAFE_ID_CHAR = re.compile(r"[^A-Za-z0-9._:/@-]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
#: printable ASCII, no white space at the ends: nothing to replace
_PLAIN = re.compile(r"(?:[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?)?\Z")
READABLE_LENGTH = 200
HASH_LENGTH = 12


def ldif_value(value: str) -> str:
    """``value`` as the BDII can carry it (see the module documentation for what is replaced)."""
    if _PLAIN.match(value) and "dn:" not in value:  # the usual case, kept as it is
        return value
    value = _SURROGATE.sub("\ufffd", value)
    value = _CONTROL.sub(" ", value)
    return value.replace("dn:", "dn :").strip()


def is_safe_id(value: str) -> bool:
    """True when ``value`` can be an RDN value as it is."""
    return _SAFE_ID.match(value) is not None and "dn:" not in value


def ldif_id(value: str) -> str:
    """The form of an entry ID used in DNs and foreign keys: ``value`` itself when safe, else mapped."""
    if is_safe_id(value):
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_LENGTH]
    ascii_form = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    readable = _UNSAFE_ID_CHAR.sub("_", ascii_form).replace("dn:", "dn_")[:READABLE_LENGTH]
    return f"{readable}~{digest}"


def equality_key(value: str) -> str:
    """What slapd's caseExactMatch compares (NFKC, white space runs as one space, none at the ends).

    Two values of one attribute with the same key make slapd refuse the whole entry.
    """
    if not value.isascii():  # NFKC leaves ASCII as it is
        value = unicodedata.normalize("NFKC", value)
    return " ".join(value.split())
