"""Fixtures of the probe tests: a site configuration in tmp_path and a way to run a probe."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List

import pytest

from fedcloud_site import cli

LINE = re.compile(r"^(OK|WARNING|CRITICAL|UNKNOWN) - (\w+): (.+?)(?: \| (.*))?$")


@dataclass
class ProbeRun:
    exit_status: int
    line: str
    status: str
    text: str
    perfdata: str

    def perf(self, label: str) -> str:
        match = re.search(rf"'{label}'=([^ ]*)", self.perfdata)
        assert match, f"no perfdata {label!r} in {self.perfdata!r}"
        return match.group(1)


@pytest.fixture
def site_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write fedcloud-site.yaml (site + static cloud + state under tmp_path) plus the given sections."""

    def _write(sections: str = "") -> Path:
        path = tmp_path / "etc" / "fedcloud-site.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        base = textwrap.dedent(f"""\
            site:
              name: PROBE-SITE
              endpoint: https://cloud.example.org:5000/v3
            cloud:
              backend: static
            accounting:
              state_dir: {tmp_path}/state/accounting
              queue_dir: {tmp_path}/spool/outgoing
            ssm:
              state_dir: {tmp_path}/state/ssm
            cloudinfo:
              state_dir: {tmp_path}/state/cloudinfo
              cache_dir: {tmp_path}/cache/cloudinfo
            images:
              state_dir: {tmp_path}/state/images
              cache_dir: {tmp_path}/cache/images
            perun:
              state_dir: {tmp_path}/state/perun
              file: {tmp_path}/perun/users.json
            """)
        path.write_text(_merge(base, textwrap.dedent(sections)), encoding="utf-8")
        return path

    return _write


def _merge(base: str, extra: str) -> str:
    """Append ``extra``'s keys to the same top-level sections of ``base`` (simple two-level YAML)."""
    import yaml

    data = yaml.safe_load(base)
    for key, value in (yaml.safe_load(extra) or {}).items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    return yaml.safe_dump(data, sort_keys=False)


@pytest.fixture
def probe(capsys: pytest.CaptureFixture) -> Callable[..., ProbeRun]:
    """Run ``fedcloud-site --config CONFIG check NAME ARGS...`` in-process; parse its one line."""

    def _run(config: Path, name: str, *args: str) -> ProbeRun:
        capsys.readouterr()
        argv: List[str] = ["--config", str(config), "check", name, *args]
        status = cli.main(argv)
        out = capsys.readouterr().out
        lines = out.splitlines()
        assert len(lines) == 1, f"a probe prints exactly one line, got {out!r}"
        match = LINE.match(lines[0])
        assert match, f"not a monitoring plugin line: {lines[0]!r}"
        assert match.group(2) == name
        assert status == {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}[match.group(1)]
        return ProbeRun(status, lines[0], match.group(1), match.group(3), match.group(4) or "")

    return _run
