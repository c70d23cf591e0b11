"""Downloads: sha512 while streaming, Range resume, limits, parallelism, crash and restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fedcloud_testing.image_server import Fault


def cache_files(world):
    root = world.tmp / "cache"
    return sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_checksum_mismatch_deletes_the_partial_file_and_retries_later(world):
    entry = world.image("a.raw")
    world.publish(world.image_list([entry]))
    world.server.inject("/images/a.raw", Fault("corrupt"))
    assert world.sync() == 1
    [row] = world.status()
    assert row["state"] == "failed" and "sha512 mismatch" in row["reason"]
    assert not any(name.endswith(".part") for name in cache_files(world))
    assert world.cloud_images() == []
    assert world.sync() == 0
    assert world.by_state("registered")[0]["identifier"] == entry["dc:identifier"]


def test_failed_image_waits_for_retry_after(world):
    world.publish(world.image_list([world.image("a.raw")]))
    world.server.inject("/images/a.raw", Fault("corrupt"))
    world.write_config(retry_after="1h")
    assert world.sync() == 1
    assert world.sync() == 1  # not retried yet: still failed, no new request
    assert len(world.server.requests_for("/images/a.raw")) == 1
    assert world.status()[0]["next_attempt"] is not None


def test_dropped_connection_is_resumed_with_range_in_the_same_run(world):
    world.publish(world.image_list([world.image("a.raw", size=400_000)]))
    world.server.inject("/images/a.raw", Fault("drop", after=150_000))
    assert world.sync() == 0
    first, second = world.server.requests_for("/images/a.raw")
    assert "Range" not in first.headers
    assert second.headers["Range"].startswith("bytes=") and second.status == 206
    assert int(second.headers["Range"][6:-1]) > 0
    assert len(world.by_state("registered")) == 1


def test_partial_download_is_kept_and_resumed_in_the_next_run(world):
    world.publish(world.image_list([world.image("a.raw", size=400_000)]))
    world.server.inject("/images/a.raw", Fault("drop", after=100_000, count=3))
    assert world.sync() == 1
    [row] = world.status()
    assert row["state"] == "failed" and "kept for resuming" in row["reason"]
    assert any(name.endswith(".part") for name in cache_files(world))
    assert world.sync() == 0
    last = world.server.requests_for("/images/a.raw")[-1]
    assert last.status == 206 and last.headers["Range"] != "bytes=0-"
    assert world.by_state("registered")


def test_server_ignoring_range_restarts_from_zero(world):
    world.publish(world.image_list([world.image("a.raw", size=400_000)]))
    world.server.inject("/images/a.raw", Fault("drop", after=100_000))
    world.server.inject("/images/a.raw", Fault("no-range"))
    assert world.sync() == 0
    assert [r.status for r in world.server.requests_for("/images/a.raw")] == [200, 200]
    assert world.by_state("registered")


def test_cache_quota_hit_fails_the_image_without_downloading(world):
    world.publish(world.image_list([world.image("big.raw", size=500_000)]))
    world.write_config(cache_quota="300K")
    assert world.sync() == 1
    [row] = world.status()
    assert row["state"] == "failed" and "cache quota hit" in row["reason"]
    assert world.server.requests_for("/images/big.raw") == []
    world.write_config(cache_quota="10M")
    assert world.sync() == 0
    assert world.by_state("registered")


def test_free_space_check_happens_before_download(world):
    world.publish(world.image_list([world.image("a.raw")]))
    world.write_config(min_free_space="1000T")
    assert world.sync() == 1
    assert "not enough free disk space" in world.status()[0]["reason"]
    assert world.server.requests_for("/images/a.raw") == []


def test_registered_images_are_evicted_from_the_cache_to_make_room(world):
    world.publish(world.image_list([world.image("a.raw", size=300_000)]))
    world.write_config(cache_quota="500K")
    assert world.sync() == 0
    world.publish(world.image_list([world.image("a.raw", size=300_000), world.image("b.raw", size=300_000)],
                               version="20250101000000"))
    assert world.sync() == 0
    assert len(world.by_state("registered")) == 2
    assert len(cache_files(world)) == 1


def test_image_larger_than_max_image_size_is_refused(world):
    world.publish(world.image_list([world.image("a.raw", size=300_000)]))
    world.write_config(max_image_size="100K")
    assert world.sync() == 1
    assert "exceeds max_image_size" in world.status()[0]["reason"]


def test_server_sending_more_than_hv_size_is_refused(world):
    entry = world.image("a.raw", size=300_000)
    entry["hv:size"] = "200000"
    world.publish(world.image_list([entry]))
    assert world.sync() == 1
    assert "more than hv:size" in world.status()[0]["reason"]


def test_at_most_max_parallel_downloads_run_at_once(world):
    images = [world.image(f"{n}.raw", size=60_000) for n in range(4)]
    for n in range(4):
        world.server.inject(f"/images/{n}.raw", Fault("throttle", rate=200_000))
    world.publish(world.image_list(images))
    world.write_config(max_parallel_downloads=2)
    assert world.sync() == 0
    assert world.server.max_active == 2
    assert len(world.by_state("registered")) == 4


def test_killed_process_resumes_the_download_after_restart(world):
    size = 3_000_000
    world.publish(world.image_list([world.image("slow.raw", size=size)]))
    world.server.inject("/images/slow.raw", Fault("throttle", rate=1_000_000))
    config = world.write_config()
    command = [sys.executable, "-m", "fedcloud_site.cli", "--config", str(config), "images", "once"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    part = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        parts = list((world.tmp / "cache").rglob("*.part")) if (world.tmp / "cache").exists() else []
        if parts and parts[0].stat().st_size > 500_000:
            part = parts[0]
            break
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    assert part is not None, "download never started"
    kept = part.stat().st_size
    assert 0 < kept < size
    result = subprocess.run(command, capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    resumed = world.server.requests_for("/images/slow.raw")[-1]
    assert resumed.status == 206 and int(resumed.headers["Range"][6:-1]) >= kept
    assert world.by_state("registered")
    assert not list(Path(world.tmp / "cache").rglob("*.part"))
