"""The peer tools' own files and programs for tests and benchmarks, fetched once and cached.

Nothing of the peers is committed: :func:`sdist_member` takes a file from a project's source
distribution on PyPI (``pip download --no-binary :all:``), :func:`github_file` a file of a repository at
a tag (checked against a pinned SHA-256, so a moved tag cannot change what tests read), and
:func:`ensure_venv` installs a peer program into a virtualenv of its own.  Everything is cached under
:func:`cache_dir` (``FEDCLOUD_SITE_PEER_CACHE``, default ``~/.cache/fedcloud-site-tests/peers``).  When
the index or GitHub cannot be reached, :class:`PeerUnavailable` says so (tests skip on it); any other
failure is an error.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

CACHE_ENV = "FEDCLOUD_SITE_PEER_CACHE"
#: pip failures that mean "the package index cannot be reached", not "the package is broken"
NETWORK_ERRORS = ("NewConnectionError", "Failed to establish", "Temporary failure in name resolution",
                  "Network is unreachable", "No matching distribution found", "Could not find a version",
                  "ConnectTimeout", "timed out", "ProxyError", "Connection refused", "Name or service not known")


class PeerUnavailable(Exception):
    """A peer's file or program cannot be fetched because the network (PyPI, GitHub) is unreachable."""


def cache_dir() -> Path:
    """Where fetched peer files and virtualenvs are kept between runs."""
    named = os.environ.get(CACHE_ENV)
    directory = Path(named) if named else Path.home() / ".cache" / "fedcloud-site-tests" / "peers"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _pip_failure(what: str, output: str) -> Exception:
    last = output.strip().splitlines()[-1] if output.strip() else "no output"
    if any(marker in output for marker in NETWORK_ERRORS):
        return PeerUnavailable(f"package index unreachable, cannot {what}: {last}")
    return RuntimeError(f"cannot {what}:\n{output[-3000:]}")


def sdist(package: str, version: str, timeout: float = 600) -> Path:
    """The unpacked source distribution of ``package==version`` (downloaded on first use)."""
    root = cache_dir() / "sdist"
    for candidate in (root / f"{package}-{version}", root / f"{package.replace('-', '_')}-{version}"):
        if (candidate / "PKG-INFO").exists():
            return candidate
    download = root / "download"
    download.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q",
                             "--no-deps", "--no-binary", ":all:", "-d", str(download), f"{package}=={version}"],
                            capture_output=True, timeout=timeout)
    if result.returncode != 0:
        raise _pip_failure(f"download {package}=={version}", (result.stdout + result.stderr).decode(errors="replace"))
    names = [p for p in download.iterdir() if p.name.lower().replace("_", "-").startswith(
        f"{package.lower().replace('_', '-')}-{version}") and p.name.endswith(".tar.gz")]
    if not names:
        raise RuntimeError(f"pip downloaded no sdist of {package}=={version} into {download}")
    with tarfile.open(names[0]) as archive:
        members = [m for m in archive.getmembers() if m.isfile() or m.isdir()]  # no links, devices
        for member in members:
            if member.name.startswith("/") or ".." in Path(member.name).parts:
                raise RuntimeError(f"{names[0]}: unsafe member {member.name!r}")
        archive.extractall(root, members=members)
    top = root / names[0].name[: -len(".tar.gz")]
    if not (top / "PKG-INFO").exists():
        raise RuntimeError(f"{names[0]} did not unpack into {top}")
    return top


def sdist_member(package: str, version: str, member: str) -> Path:
    """A file of ``package==version``'s source distribution, e.g. ``etc/caso/caso.conf.sample``."""
    path = sdist(package, version) / member
    if not path.is_file():
        raise FileNotFoundError(f"{package} {version} has no {member}")
    return path


def github_file(repo: str, ref: str, path: str, sha256: str, timeout: float = 60) -> Path:
    """``path`` of GitHub repository ``repo`` at tag ``ref``, verified against ``sha256``."""
    target = cache_dir() / "github" / repo.replace("/", "+") / ref / path
    if not target.exists():
        url = f"https://raw.githubusercontent.com/{repo}/{ref}/{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - fixed https URL
                data = response.read(1 << 20)
        except (urllib.error.URLError, OSError) as exc:
            raise PeerUnavailable(f"GitHub unreachable, cannot fetch {url}: {exc}") from None
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + ".part")
        tmp.write_bytes(data)
        tmp.replace(target)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    if digest != sha256:
        raise RuntimeError(f"{target}: SHA-256 {digest}, expected {sha256} ({repo} {ref} {path})")
    return target


def ensure_venv(directory: Path, requirement: str, timeout: float = 1800) -> Path:
    """The Python of a virtualenv at ``directory`` with ``requirement`` installed (reused when already there)."""
    python = directory / "bin" / "python"
    marker = directory / f".installed-{requirement.replace('=', '-').replace('/', '_')}"
    if marker.exists() and python.exists():
        return python
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(directory)], check=True, capture_output=True, timeout=300)
    result = subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", requirement],
                            capture_output=True, timeout=timeout)
    if result.returncode != 0:
        raise _pip_failure(f"install {requirement}", (result.stdout + result.stderr).decode(errors="replace"))
    marker.write_text(requirement, encoding="utf-8")
    return python


def default_venv(name: str, env: Optional[str] = None) -> Path:
    """A virtualenv directory in the cache (or the one ``env`` names)."""
    named = os.environ.get(env) if env else None
    return Path(named) if named else cache_dir() / "venv" / name
