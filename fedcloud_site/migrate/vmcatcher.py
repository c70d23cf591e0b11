"""vmcatcher's subscriptions (its SQLite database, ``VMCATCHER_RDBMS``) -> ``images.subscriptions``.

vmcatcher 0.6 (``vmcatcher/databaseDefinition.py``) keeps, per ``subscription``: ``uri``, ``identifier``
(the list's ``dc:identifier``), ``description``, ``authorised``, ``userName``/``password`` (AppDB token:
user name = token, password ``x-oauth-basic``) and ``updateMode`` (2 = every new image subscribed);
the endorsers it accepts for the list (``subscriptionAuth`` -> ``endorser`` -> ``endorserPrincible``:
``hv_dn``, ``hv_ca``); and per image (``ImageDefinition``) whether it is subscribed (``cache`` = 1).
The database is opened read-only; the images vmcatcher's hooks registered are adopted
(``images.adopt_images_from: [vmcatcher]``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Dict, List, Set

from .atrope import subscription_name
from .errors import MigrationError
from .report import Report
from .result import ToolResult

TOOL = "vmcatcher"
AUTOSUBSCRIBE = 2
APPDB_PASSWORDS = (None, "", "x-oauth-basic")


def _rows(db: sqlite3.Connection, path: Path, query: str, *args: Any) -> List[sqlite3.Row]:
    try:
        return list(db.execute(query, args))
    except sqlite3.Error as exc:
        raise MigrationError(path, f"not a vmcatcher 0.6 database: {exc}") from exc


def migrate(path: Path, report: Report) -> ToolResult:
    """Read vmcatcher's database into a :class:`ToolResult` (the ``images`` section)."""
    path = Path(path)
    if not path.is_file():
        raise MigrationError(path, "not a file (give vmcatcher's SQLite database, VMCATCHER_RDBMS)")
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise MigrationError(path, f"cannot open: {exc}") from exc
    db.row_factory = sqlite3.Row
    try:
        return _read(db, path, report)
    finally:
        db.close()


def _read(db: sqlite3.Connection, path: Path, report: Report) -> ToolResult:
    subscriptions: List[Dict[str, Any]] = []
    taken: Set[str] = set()
    for sub in _rows(db, path, "SELECT id, identifier, description, uri, authorised, userName, password, "
                               "updateMode, trustAnchor FROM subscription ORDER BY id"):
        where = f"subscription {sub['identifier']}"
        uri = sub["uri"]
        if not sub["authorised"]:
            report.skip(path, where, "not authorised in vmcatcher (its lists were not used): not migrated")
            continue
        if not isinstance(uri, str) or not uri.startswith(("https://", "http://", "file://")):
            raise MigrationError(path, f"expected an https:// (or http://, file://) URL, got {uri!r}", where, "uri")
        signers = _rows(db, path, "SELECT p.hv_dn, p.hv_ca FROM subscriptionAuth a JOIN endorserPrincible p "
                                  "ON p.endorser = a.endorser WHERE a.subscription = ? AND a.authorised "
                                  "ORDER BY p.id", sub["id"])
        if not signers:
            report.skip(path, where, "no authorised endorser: vmcatcher accepted none of its lists; not migrated")
            continue
        dn, ca = signers[0]["hv_dn"], signers[0]["hv_ca"]
        for key, value in (("hv_dn", dn), ("hv_ca", ca)):
            if not isinstance(value, str) or not value.startswith("/"):
                raise MigrationError(path, f"expected a slash-form DN, got {value!r}", f"{where} endorser", key)
        for other in signers[1:]:
            report.skip(path, f"{where} endorser {other['hv_dn']}", "a subscription trusts one signer in "
                                                                    "fedcloud-site; the first one is kept")
        name = subscription_name(str(sub["description"] or sub["identifier"]), taken)
        taken.add(name)
        index = len(subscriptions)
        entry: Dict[str, Any] = {"name": name, "url": uri, "endorser_dn": dn, "ca_dn": ca}
        if isinstance(sub["identifier"], str) and sub["identifier"]:
            entry["identifier"] = sub["identifier"]
        report.map(path, f"{where}.uri", f"images.subscriptions[{index}].url", uri)
        report.map(path, f"{where} endorser", f"images.subscriptions[{index}].endorser_dn/ca_dn", f"{dn} / {ca}")
        report.map(path, f"{where}.identifier", f"images.subscriptions[{index}].identifier", sub["identifier"],
                   "the list must keep its dc:identifier")
        user, password = sub["userName"], sub["password"]
        if user:
            if password in APPDB_PASSWORDS:
                entry["token"] = user
                report.map(path, f"{where}.userName", f"images.subscriptions[{index}].token", user, secret=True)
            else:
                report.skip(path, f"{where}.userName/password", "HTTP basic authentication other than an AppDB "
                                                                "token is not supported")
        if sub["updateMode"] == AUTOSUBSCRIBE:
            report.map(path, f"{where}.updateMode", f"images.subscriptions[{index}].filter", "every image",
                       "autosubscribe: every image of the list")
        else:
            wanted = [row["identifier"] for row in _rows(
                db, path, "SELECT identifier FROM ImageDefinition WHERE subscription = ? AND cache = 1 ORDER BY id",
                sub["id"])]
            if not wanted:
                report.warn(f"{path}: {where}: no image subscribed in vmcatcher: the subscription takes none "
                            "(filter on an identifier no list has); subscribe images with filter.identifiers")
                wanted = ["(none subscribed in vmcatcher)"]
            entry["filter"] = {"identifiers": wanted}
            report.map(path, f"{where} subscribed images", f"images.subscriptions[{index}].filter.identifiers",
                       wanted)
        if sub["trustAnchor"] == 1:
            report.skip(path, f"{where}.trustAnchor", "browser CAs: fedcloud-site checks HTTPS against the system "
                                                      "bundle and images.capath; set images.ca_bundle if needed")
        subscriptions.append(entry)
    images: Dict[str, Any] = {"subscriptions": subscriptions, "adopt_images_from": ["vmcatcher"]}
    report.map(path, "(the images vmcatcher's hooks registered)", "images.adopt_images_from", ["vmcatcher"],
               "taken over (same entry and sha512), not uploaded again")
    return ToolResult(TOOL, str(path), sections={"images": images})
