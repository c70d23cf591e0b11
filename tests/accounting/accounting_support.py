"""Fixtures of the accounting tests: a static-backend site in tmp_path, extraction at a fixed instant."""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from fedcloud_site.accounting.daemon import run_extraction
from fedcloud_site.cloud import open_backend
from fedcloud_site.config import load_config
from fedcloud_site.log import get_logger
from fedcloud_site.timeutil import parse_time

HERE = Path(__file__).resolve().parent
GOLDEN_SITE = HERE / "data" / "golden-site.yaml"
GOLDEN_DIR = HERE / "golden"

BASE_CONFIG: Dict[str, Any] = {
    "site": {"name": "TEST-SITE", "endpoint": "https://cloud.test.example.org:5000/v3",
             "service_name": "TEST-SITE-cloud"},
    "vos": {"fedcloud.egi.eu": {"projects": ["fedcloud"], "fqan": "/fedcloud.egi.eu/Role=NULL/Capability=NULL"}},
    "accounting": {"first_run_start": "2026-10-01", "ignore_projects": ["admin"],
                   "record_types": ["cloud", "ip", "accelerator", "storage"],
                   "cloud_type": "fedcloud-site (tests)"},
}


class AccountingSite:
    """A static site description plus a configuration, both in a directory of their own."""

    def __init__(self, directory: Path, site: Dict[str, Any], overrides: Optional[Dict[str, Any]] = None,
                 site_format: str = "yaml") -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.site_file = self.dir / f"site.{site_format}"  # JSON reads much faster than YAML for big sites
        self.config_file = self.dir / "fedcloud-site.yaml"
        self.queue_dir = self.dir / "outgoing"
        self.storage_queue_dir = self.dir / "outgoing-storage"
        self.ip_queue_dir = self.dir / "outgoing-ip"
        self.accelerator_queue_dir = self.dir / "outgoing-accelerator"
        self.state_dir = self.dir / "state"
        self.write_site(site)
        config: Dict[str, Any] = {key: dict(value) for key, value in BASE_CONFIG.items()}
        config["cloud"] = {"backend": "static", "static": {"site_file": str(self.site_file),
                                                           "state_file": str(self.dir / "static-state.json")}}
        config["accounting"].update({"queue_dir": str(self.queue_dir), "state_dir": str(self.state_dir),
                                     "storage_queue_dir": str(self.storage_queue_dir),
                                     "ip": {"queue_dir": str(self.ip_queue_dir), "destination": "ip-records"},
                                     "accelerator": {"queue_dir": str(self.accelerator_queue_dir),
                                                     "destination": "gpu-records"}})
        for key, value in (overrides or {}).items():
            if isinstance(value, dict) and isinstance(config.get(key), dict) and key != "cloud":
                config[key].update(value)
            else:
                config[key] = value
        self.config_file.write_text(yaml.safe_dump(config), encoding="utf-8")

    def write_site(self, site: Dict[str, Any]) -> None:
        self.site_data = site
        if self.site_file.suffix == ".json":
            self.site_file.write_text(json.dumps(site), encoding="utf-8")
        else:
            self.site_file.write_text(yaml.safe_dump(site, allow_unicode=True), encoding="utf-8")

    @property
    def config(self) -> Any:
        return load_config(self.config_file)

    def run(self, now: Any, dry_run: bool = False, only: Optional[str] = None) -> Dict[str, Any]:
        """One extraction at ``now`` (raises JobIncomplete like the job does)."""
        config = self.config
        cloud = open_backend(config)
        return run_extraction(config, cloud, parse_time(now), get_logger("accounting"), dry_run=dry_run, only=only)

    def dry_run(self, now: Any) -> str:
        config = self.config
        stream = io.StringIO()
        run_extraction(config, open_backend(config), parse_time(now), get_logger("accounting"), dry_run=True,
                       stream=stream)
        return stream.getvalue()

    def messages(self, storage: bool = False, kind: str = "cloud") -> List[bytes]:
        """The queued messages of one record type (cloud by default; ``storage=True``: storage)."""
        from apel_loader import read_queue

        kind = "storage" if storage else kind
        path = {"cloud": self.queue_dir, "storage": self.storage_queue_dir, "ip": self.ip_queue_dir,
                "accelerator": self.accelerator_queue_dir}[kind]
        return read_queue(path) if path.exists() else []


def at(text: str) -> datetime:
    return parse_time(text)


def two_project_site(**sections: Any) -> Dict[str, Any]:
    """A site description: projects p1 (fedcloud) and p2 (bio, VO biomed) with six running VMs each, plus
    ``sections`` (e.g. ``volumes=[...]``)."""
    return {"projects": [{"id": "p1", "name": "fedcloud"},
                         {"id": "p2", "name": "bio", "properties": {"egi.VO": "biomed"}}],
            "flavors": [{"id": "m1", "name": "m1", "vcpus": 1, "ram": 2048, "disk": 20}],
            "vms": [{"id": f"0000000{p}-0000-4000-8000-00000000000{i}", "name": f"v{i}", "project": f"p{p}",
                     "user": "u", "status": "running", "created": "2026-11-01T00:00:00Z", "flavor": "m1"}
                    for p in (1, 2) for i in range(6)],
            **sections}
