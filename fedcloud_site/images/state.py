"""The subscriber's sqlite state: subscriptions (last good list), image versions and their states, approvals.

One row per image *version* (subscription, ``dc:identifier``, sha512). States:

* ``listed``   - in a verified list, waiting to be downloaded
* ``awaiting-approval`` - listed, but the subscription's policy wants ``images approve`` first
* ``fetched``  - bytes complete in the cache (checksum not yet confirmed)
* ``verified`` - in the cache with the right sha512 and size
* ``registered`` - in the cloud (``image_id``)
* ``deprecated`` - retired (removed from its list, list expired, replaced): deactivated, deleted after the grace
* ``removed``  - deleted from the cloud, or dropped before it got there
* ``failed``   - the last attempt failed (``reason``); retried after ``next_attempt``
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

from ..timeutil import iso_utc, parse_time, utcnow

STATES = ("listed", "awaiting-approval", "fetched", "verified", "registered", "deprecated", "removed", "failed")
#: states in which the image (may) exist in the cloud
IN_CLOUD = ("registered", "deprecated")
#: states of a version that was never (or is not yet) in the cloud
PENDING = ("listed", "awaiting-approval", "fetched", "verified", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    name TEXT PRIMARY KEY,
    url TEXT,
    state TEXT NOT NULL DEFAULT 'never',      -- ok | failed | never
    reason TEXT,
    etag TEXT,
    last_modified TEXT,
    list_identifier TEXT,
    list_version TEXT,
    list_expires TEXT,
    list_file TEXT,
    signer_dn TEXT,
    last_checked TEXT,
    last_success TEXT,
    updated_at TEXT
);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY,
    subscription TEXT NOT NULL,
    identifier TEXT NOT NULL,
    sha512 TEXT NOT NULL,
    version TEXT,
    size INTEGER,
    title TEXT,
    state TEXT NOT NULL,
    reason TEXT,
    image_id TEXT,
    cache_file TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt TEXT,
    list_identifier TEXT,
    entry TEXT,
    first_seen TEXT,
    registered_at TEXT,
    deprecated_at TEXT,
    removed_at TEXT,
    updated_at TEXT,
    UNIQUE (subscription, identifier, sha512)
);
CREATE INDEX IF NOT EXISTS images_by_state ON images (subscription, state);
CREATE TABLE IF NOT EXISTS approvals (
    subscription TEXT NOT NULL,
    identifier TEXT NOT NULL,
    approved_at TEXT NOT NULL,
    PRIMARY KEY (subscription, identifier)
);
"""


def state_db_path(settings: Any) -> Path:
    """The subscriber's database: ``<images state dir>/images.sqlite``."""
    return Path(settings.state_path("images")) / "images.sqlite"


@dataclass
class ImageRow:
    id: int
    subscription: str
    identifier: str
    sha512: str
    version: str
    size: int
    title: str
    state: str
    reason: Optional[str]
    image_id: Optional[str]
    cache_file: Optional[str]
    attempts: int
    next_attempt: Optional[str]
    list_identifier: Optional[str]
    entry: Optional[str]
    first_seen: Optional[str]
    registered_at: Optional[str]
    deprecated_at: Optional[str]
    removed_at: Optional[str]
    updated_at: Optional[str]

    @property
    def entry_data(self) -> Dict[str, Any]:
        return json.loads(self.entry) if self.entry else {}

    def due(self, now: datetime) -> bool:
        """A failed row may be retried now."""
        return self.next_attempt is None or parse_time(self.next_attempt) <= now


@dataclass
class SubscriptionRow:
    name: str
    url: Optional[str]
    state: str
    reason: Optional[str]
    etag: Optional[str]
    last_modified: Optional[str]
    list_identifier: Optional[str]
    list_version: Optional[str]
    list_expires: Optional[str]
    list_file: Optional[str]
    signer_dn: Optional[str]
    last_checked: Optional[str]
    last_success: Optional[str]
    updated_at: Optional[str]


class StateDB:
    """Thin typed access to the sqlite file; every write commits at once (one thread only)."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        """Open (and create) the database; ``read_only`` opens an existing file without writing anything to
        it or beside it (a dry run next to the running daemon)."""
        self.path = path
        if read_only:
            self.conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
            self.conn.row_factory = sqlite3.Row
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(path), timeout=30, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        # a rollback journal (not WAL): every commit lands in the main file, which read-only/immutable
        # readers (``images status``, the images probe) read without taking locks
        self.conn.execute("PRAGMA journal_mode=DELETE")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(_SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> StateDB:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- subscriptions -------------------------------------------------------------------
    def subscription(self, name: str) -> Optional[SubscriptionRow]:
        row = self.conn.execute("SELECT * FROM subscriptions WHERE name = ?", (name,)).fetchone()
        return SubscriptionRow(**dict(row)) if row else None

    def subscriptions(self) -> List[SubscriptionRow]:
        return [SubscriptionRow(**dict(r)) for r in self.conn.execute("SELECT * FROM subscriptions ORDER BY name")]

    def save_subscription(self, name: str, **values: Any) -> None:
        values["updated_at"] = iso_utc(utcnow())
        if self.subscription(name) is None:
            self.conn.execute("INSERT INTO subscriptions (name) VALUES (?)", (name,))
        assignments = ", ".join(f"{key} = ?" for key in values)
        self.conn.execute(f"UPDATE subscriptions SET {assignments} WHERE name = ?", (*values.values(), name))

    def delete_subscription(self, name: str) -> None:
        self.conn.execute("DELETE FROM subscriptions WHERE name = ?", (name,))

    # -- images --------------------------------------------------------------------------
    def image(self, subscription: str, identifier: str, sha512: str) -> Optional[ImageRow]:
        row = self.conn.execute("SELECT * FROM images WHERE subscription = ? AND identifier = ? AND sha512 = ?",
                                (subscription, identifier, sha512)).fetchone()
        return ImageRow(**dict(row)) if row else None

    def image_by_id(self, row_id: int) -> ImageRow:
        return ImageRow(**dict(self.conn.execute("SELECT * FROM images WHERE id = ?", (row_id,)).fetchone()))

    def images(self, subscription: Optional[str] = None, states: Optional[tuple] = None,
               identifier: Optional[str] = None) -> List[ImageRow]:
        sql, args = "SELECT * FROM images WHERE 1=1", []
        if subscription is not None:
            sql += " AND subscription = ?"
            args.append(subscription)
        if identifier is not None:
            sql += " AND identifier = ?"
            args.append(identifier)
        if states:
            sql += f" AND state IN ({', '.join('?' for _ in states)})"
            args.extend(states)
        sql += " ORDER BY subscription, identifier, id"
        return [ImageRow(**dict(r)) for r in self.conn.execute(sql, args)]

    def add_image(self, subscription: str, identifier: str, sha512: str, state: str, **values: Any) -> ImageRow:
        now = iso_utc(utcnow())
        self.conn.execute(
            "INSERT INTO images (subscription, identifier, sha512, state, first_seen, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?)", (subscription, identifier, sha512, state, now, now))
        row = self.image(subscription, identifier, sha512)
        assert row is not None
        if values:
            self.update_image(row.id, **values)
            row = self.image_by_id(row.id)
        return row

    def update_image(self, row_id: int, **values: Any) -> None:
        if "state" in values and values["state"] not in STATES:
            raise ValueError(f"unknown image state {values['state']!r}")
        values["updated_at"] = iso_utc(utcnow())
        assignments = ", ".join(f"{key} = ?" for key in values)
        self.conn.execute(f"UPDATE images SET {assignments} WHERE id = ?", (*values.values(), row_id))

    def prune_removed(self, before: str) -> int:
        """Forget image versions removed before ``before`` (ISO time); returns how many."""
        cursor = self.conn.execute("DELETE FROM images WHERE state = 'removed' AND removed_at < ?", (before,))
        return cursor.rowcount

    # -- approvals -----------------------------------------------------------------------
    def approve(self, subscription: str, identifier: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO approvals VALUES (?, ?, ?)",
                          (subscription, identifier, iso_utc(utcnow())))

    def approvals(self) -> Set[Tuple[str, str]]:
        return {(r[0], r[1]) for r in self.conn.execute("SELECT subscription, identifier FROM approvals")}

    # -- status --------------------------------------------------------------------------
    def status(self) -> List[Dict[str, Any]]:
        """One object per known image version, with its list's state (for ``images status --json``)."""
        subs = {s.name: s for s in self.subscriptions()}
        result = []
        for row in self.images():
            sub = subs.get(row.subscription)
            result.append({
                "subscription": row.subscription, "identifier": row.identifier, "version": row.version,
                "title": row.title, "state": row.state, "reason": row.reason, "image_id": row.image_id,
                "sha512": row.sha512, "size": row.size, "list_identifier": row.list_identifier,
                "attempts": row.attempts, "next_attempt": row.next_attempt, "registered_at": row.registered_at,
                "deprecated_at": row.deprecated_at, "removed_at": row.removed_at, "updated_at": row.updated_at,
                "list_state": sub.state if sub else None, "list_reason": sub.reason if sub else None,
            })
        return result

    def iter_rows(self) -> Iterator[ImageRow]:
        yield from self.images()

