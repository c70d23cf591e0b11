"""Golden LDIF and JSON of the fixed test site (static backend, fixed time).

Run with FEDCLOUD_SITE_UPDATE_GOLDEN=1 to rewrite the golden files after an intended change, then review
the diff.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

from cloudinfo_helpers import build

from fedcloud_site.cloudinfo.glue21json import write_json
from fedcloud_site.cloudinfo.ldif import write_ldif

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("FEDCLOUD_SITE_UPDATE_GOLDEN") == "1"


def check_golden(name: str, produced: bytes) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_bytes(produced)
    assert produced.decode("utf-8") == path.read_text(encoding="utf-8"), f"differs from {path}"


def test_ldif_of_the_test_site_matches_the_golden_file(site_config):
    out = io.BytesIO()
    write_ldif(build(site_config), out)
    check_golden("test-site.ldif", out.getvalue())


def test_json_of_the_test_site_matches_the_golden_file(site_config):
    out = io.BytesIO()
    write_json(build(site_config), out)
    # the stream is one line; the golden file is the same document, indented for review
    document = json.loads(out.getvalue())
    check_golden("test-site.json", (json.dumps(document, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))
