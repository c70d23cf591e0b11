"""Fixtures of the accounting tests (shared helpers live in accounting_support.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import pytest
import yaml
from accounting_support import GOLDEN_SITE, AccountingSite


@pytest.fixture
def golden_site_data() -> Dict[str, Any]:
    return yaml.safe_load(GOLDEN_SITE.read_text(encoding="utf-8"))


@pytest.fixture
def make_site(tmp_path: Path):
    """``make_site(site_dict, overrides=None, name="site", site_format="yaml")`` -> AccountingSite in tmp_path."""

    def _make(site: Dict[str, Any], overrides: Optional[Dict[str, Any]] = None, name: str = "site",
              site_format: str = "yaml") -> AccountingSite:
        return AccountingSite(tmp_path / name, site, overrides, site_format)

    return _make


