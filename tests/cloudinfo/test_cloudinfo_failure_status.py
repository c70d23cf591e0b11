"""Any failed refresh is recorded in the status file that `cloudinfo status` and the infosys probe read."""

from __future__ import annotations

import subprocess
import sys

from fedcloud_site.cloudinfo.cache import read_status


def test_a_refresh_failing_for_missing_settings_is_recorded_in_the_status(tmp_path):
    cache = tmp_path / "cache"
    config = tmp_path / "fedcloud-site.yaml"
    # static backend, no site.endpoint and no cloudinfo.endpoint.url: the model cannot be built
    config.write_text(f"site: {{name: TEST-SITE}}\ncloudinfo: {{cache_dir: {cache}, state_dir: {tmp_path / 's'}}}\n")
    result = subprocess.run([sys.executable, "-m", "fedcloud_site.cli", "--config", str(config), "cloudinfo", "once"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    status = read_status(cache)
    assert "cloudinfo.endpoint.url: required" in status["last_error"]
    assert status["last_attempt"].endswith("Z")
