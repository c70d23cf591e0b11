"""The sender on the libraries Debian 12 packages: stomp.py 8.0.0 and cryptography 38.0.4.

The .deb runs on the distribution's python3-stomp and python3-cryptography
(RHEL 9: cryptography 36).  These tests install exactly those versions into a
virtual environment (over this interpreter's other packages, like Debian's
python3-stomp without python3-openssl) and run the real sender there against
the real ActiveMQ of the session; the receiving side checks as usual.

The environment is built once with pip (needs PyPI or the configured index)
and cached under ``~/.cache/fedcloud-site-tests/``; without an index the tests
are skipped, saying why.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from ssm_helpers import apel_receive, fill_queue, other_host_tls_server, ssm_yaml

pytestmark = pytest.mark.services

#: Debian 12 (bookworm): python3-stomp 8.0.0-1 (depends on python3-docopt only), python3-cryptography 38.0.4
PINS = ["stomp.py==8.0.0", "docopt==0.6.2", "cryptography==38.0.4"]
EXPECTED = "stomp (8, 0, 0) cryptography 38.0.4"
REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fedcloud-site-tests"
_OFFLINE_HINTS = ("No matching distribution", "Could not find a version", "Failed to establish a new connection",
                  "Temporary failure in name resolution", "Network is unreachable", "Connection refused",
                  "connection timed out", "Max retries exceeded", "ProxyError")


def _venv_dir() -> Path:
    key = hashlib.sha256("\n".join([*PINS, os.path.realpath(sys.executable), sys.prefix, sys.version]).encode()
                         ).hexdigest()
    return CACHE / f"debian12-libs-py{sys.version_info[0]}{sys.version_info[1]}-{key[:12]}"


def _see_running_packages(venv: Path) -> None:
    """Let ``venv`` import what the running interpreter has (pytest, our dependencies), after its own pins.

    ``--system-site-packages`` reaches only the *base* interpreter's packages: when the tests run in a
    virtual environment (README's ``.venv``) pytest and the rest live in that environment instead. A .pth
    file appends those directories to the new environment's path, after its own site-packages, so the pinned
    old libraries still win."""
    own = next((venv / "lib").glob("python*/site-packages"))
    running = [path for path in sys.path if path.endswith(("site-packages", "dist-packages")) and Path(path).is_dir()]
    (own / "zz-running-interpreter.pth").write_text("".join(f"{path}\n" for path in running), encoding="utf-8")


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _build(target: Path) -> None:
    """Create the environment in a scratch directory and move it into place (other test runs may race)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / (target.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "ready").exists():
            return
        scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=target.name + ".build-"))
        try:
            subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(scratch)],
                           check=True, capture_output=True, timeout=120)
            _see_running_packages(scratch)
            pip = subprocess.run([sys.executable, "-m", "pip", "--python", str(_python(scratch)), "install",
                                  "--no-deps", "--disable-pip-version-check", "--no-input", "-q", *PINS],
                                 capture_output=True, text=True, timeout=300)
            if pip.returncode != 0:
                output = pip.stdout + pip.stderr
                if any(hint.lower() in output.lower() for hint in _OFFLINE_HINTS):
                    pytest.skip(f"cannot install {' '.join(PINS)} (package index unreachable?): "
                                f"{output.strip().splitlines()[-1]}")
                pytest.fail(f"pip install {' '.join(PINS)} failed:\n{output}")
            (scratch / "ready").write_text("\n".join(PINS) + "\n")
            if target.exists():
                shutil.rmtree(target)
            scratch.rename(target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="module")
def old_python() -> Path:
    """The interpreter of the cached environment with Debian 12's stomp.py and cryptography."""
    venv = _venv_dir()
    if not (venv / "ready").exists():
        _build(venv)
    python = _python(venv)
    versions = _run(python, "-c", "import stomp, cryptography; print('stomp', stomp.__version__, "
                                  "'cryptography', cryptography.__version__)")
    assert versions.stdout.strip() == EXPECTED, versions.stdout + versions.stderr
    return python


def _run(python: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([str(python), *args], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=str(REPO))


def _ssm_once(python: Path, config: Path) -> subprocess.CompletedProcess:
    return _run(python, "-m", "fedcloud_site.cli", "--config", str(config), "ssm", "once")


def test_signing_and_verification_pass_their_own_tests(old_python):
    # (chain and CRL checks on these libraries: the revoked-broker test below)
    result = _run(old_python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/core/test_smime.py",
                  timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and " failed" not in result.stdout


def test_pipelined_tls_sending_over_parallel_connections_delivers_each_message_once(
        tmp_path, test_pki, broker, destination, consume, outgoing, old_python):
    # stomp.py 8 reads and writes the TLS socket from two threads; without the serialised socket such a
    # run drops connections and sends messages twice
    queued = fill_queue(outgoing, 2000, size=300)
    consumer = consume(broker.port, destination)
    config = ssm_yaml(tmp_path, test_pki, outgoing, brokers=[f"localhost:{broker.tls_port}"],
                      destination=destination, extra="  connections: 4\n  window: 5\n  persistent: false\n")

    result = _ssm_once(old_python, config)

    assert result.returncode == 0, result.stderr[-3000:]
    assert "possible_duplicates" not in result.stderr and "reconnecting" not in result.stderr, result.stderr[-3000:]
    consumer.wait_for(len(queued))
    received = consumer.settle(quiet=0.3)
    assert sorted(m.headers["empa-id"] for m in received) == sorted(queued)
    for message in received[:20]:
        payload, signer = apel_receive(message.body, test_pki.capath)
        assert payload == queued[message.headers["empa-id"]] and signer == test_pki.host_dn
    assert outgoing.count() == 0


def test_encryption_needs_a_newer_cryptography_and_says_so_before_sending(tmp_path, test_pki, outgoing, old_python):
    queued = fill_queue(outgoing, 2)
    config = ssm_yaml(tmp_path, test_pki, outgoing, brokers=["localhost:1"],
                      extra=f"  server_cert: {test_pki.server.cert}\n")

    result = _ssm_once(old_python, config)

    assert result.returncode != 0
    assert "needs cryptography >= 43" in result.stderr and "this is cryptography 38.0.4" in result.stderr
    assert set(outgoing.names()) == set(queued) and not list(outgoing.path.rglob("*.lck"))


def test_a_broker_certificate_for_another_host_is_refused(tmp_path, test_pki, old_python):
    # stomp.py 8's TLS context checks no host name: the sender's own check must refuse it
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(test_pki.ca_file.read_bytes())
    with other_host_tls_server(tmp_path, test_pki) as port:
        result = _run(old_python, "-c", "\n".join([
            "from fedcloud_site.ssm.stomp_transport import StompTransport, TlsFiles",
            "from fedcloud_site.ssm.transport import TransportError",
            f"tls = TlsFiles({str(test_pki.host.cert)!r}, {str(test_pki.host.key)!r}, {str(bundle)!r})",
            f"transport = StompTransport([('localhost', {port})], '/queue/x', tls=tls, connect_timeout=2.0)",
            "try:",
            "    transport.open()",
            "except TransportError as exc:",
            "    print('refused:', exc)",
        ]))
    assert "refused: no broker reachable" in result.stdout, result.stdout + result.stderr
    assert "broker certificate rejected: Hostname mismatch, certificate is not valid for 'localhost'" in result.stdout


def test_a_revoked_broker_certificate_is_refused(tmp_path, test_pki, revoked_broker, outgoing, old_python):
    queued = fill_queue(outgoing, 2)
    config = ssm_yaml(tmp_path, test_pki, outgoing, brokers=[f"localhost:{revoked_broker.broker.tls_port}"],
                      capath=revoked_broker.revoking_capath)

    result = _ssm_once(old_python, config)

    assert result.returncode == 1
    assert "broker certificate rejected" in result.stderr and "was revoked by" in result.stderr
    assert set(outgoing.names()) == set(queued)
