"""Benchmark the SSM sender against a real local ActiveMQ (prints figures; not a timed test).

In one run, against one broker (TLS with client certificates, as EGI's brokers):

1. our sender draining ``--messages`` (10,000) queued messages of ``--size`` (40 kB):
   lock, read, sign (S/MIME), send with ``persistent:true`` and up to ``--window``
   receipts outstanding, delete on receipt; messages/s, MB/s and the process's
   resident memory sampled during the drain (it must stay flat); with the default
   single connection, then with ``--connections`` (3) parallel ones;
2. the apel/ssm way with bare stomp.py: the same messages (not even signed, which
   favours it) sent one by one, each waiting for its receipt, on ``--baseline``
   (1,000) of them; with stock stomp.py as apel/ssm uses it (no ``persistent``
   header), then with TCP_NODELAY set on its socket (stock stomp.py 9 stalls ~40 ms
   per message on Nagle's algorithm + delayed ACKs), then also with ``persistent:true``
   (the delivery guarantee our sender asks for);
3. with ``--rtt MS`` (default 20) the same through a loopback TCP proxy that delays
   every byte by half the round-trip time each way, as a broker across a WAN is:
   there waiting for every receipt costs a round trip per message.

    python benchmarks/ssm_throughput.py [--messages 10000] [--size 40960] [--window 100]
                                        [--baseline 1000] [--rtt 20] [--connections 3] [--plain]

Needs the Debian packages activemq and default-jre-headless.  Everything runs on 127.0.0.1.
The stomp.py and cryptography versions in use are printed: to measure on the distributions'
releases, run it with the interpreter of a virtual environment holding them (the one
tests/ssm/test_old_libraries.py caches under ~/.cache/fedcloud-site-tests/ has Debian 12's).
"""

from __future__ import annotations

import argparse
import os
import queue as queue_module
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, List, Optional, Tuple

import _paths  # noqa: F401 - tests/support (the simulators) on sys.path
import cryptography
import stomp
from dirq.QueueSimple import QueueSimple

from fedcloud_site.demo import ca as pki
from fedcloud_site.log import configure_logging, get_logger
from fedcloud_site.queue import MessageQueue
from fedcloud_site.ssm.pool import PooledTransport
from fedcloud_site.ssm.sender import InflightJournal, Sender
from fedcloud_site.ssm.signing import ca_bundle, load_signer
from fedcloud_site.ssm.stomp_transport import StompTransport, TlsFiles
from fedcloud_site.ssm.transport import Transport
from fedcloud_testing.activemq import ActiveMQBroker, BrokerTls


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class RssSampler:
    """Samples this process's RSS every 0.1 s while running."""

    def __init__(self) -> None:
        self.samples: List[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.samples.append(rss_mb())

    def __enter__(self) -> RssSampler:
        self.samples.append(rss_mb())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(rss_mb())


def fill(path: Path, count: int, size: int) -> int:
    """``count`` APEL-like messages of ``size`` bytes in a dirq queue (no fsync: set-up only); total bytes."""
    queue = QueueSimple(str(path))
    record = "VMUUID: {uuid}\nSiteName: BENCH-SITE\nMachineName: vm\nLocalUserId: u\nLocalGroupId: g\n" \
             "Status: started\nStartTime: 1700000000\nWallDuration: 3600\nCpuDuration: 3600\nCpuCount: 2\n%%\n"
    total = 0
    for index in range(count):
        parts = ["APEL-cloud-message: v0.4\n"]
        length = len(parts[0])
        line = 0
        while length < size:
            text = record.format(uuid=f"{index:08d}-{line:05d}")
            parts.append(text)
            length += len(text)
            line += 1
        payload = "".join(parts)[:size].encode("ascii")
        queue.add(payload)
        total += len(payload)
    return total


class DelayProxy:
    """A loopback TCP proxy that delivers every chunk ``delay`` seconds after it was read (each direction)."""

    def __init__(self, target: Tuple[str, int], delay: float) -> None:
        self.target = target
        self.delay = delay
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for source, sink in ((client, upstream), (upstream, client)):
                pending: queue_module.Queue[Tuple[float, bytes]] = queue_module.Queue()
                threading.Thread(target=self._read, args=(source, pending), daemon=True).start()
                threading.Thread(target=self._write, args=(sink, pending), daemon=True).start()

    def _read(self, source: socket.socket, pending: queue_module.Queue[Tuple[float, bytes]]) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            pending.put((time.monotonic() + self.delay, data))
            if not data:
                return

    @staticmethod
    def _write(sink: socket.socket, pending: queue_module.Queue[Tuple[float, bytes]]) -> None:
        while True:
            due, data = pending.get()
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            try:
                if not data:
                    sink.shutdown(socket.SHUT_WR)
                    return
                sink.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self.listener.close()


class ReceiptWaiter(stomp.ConnectionListener):
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.receipts: set = set()

    def on_receipt(self, frame: Any) -> None:
        with self.cond:
            self.receipts.add(frame.headers["receipt-id"])
            self.cond.notify_all()

    def wait(self, receipt: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while receipt not in self.receipts:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no receipt for {receipt}")
                self.cond.wait(0.5)
            self.receipts.discard(receipt)


def one_by_one(broker: Tuple[str, int], tls: Optional[TlsFiles], destination: str, queue_dir: Path, count: int,
               nodelay: bool, persistent: bool) -> Tuple[int, int, float]:
    """apel/ssm's loop on bare stomp.py: send, wait for that receipt, next.  (messages, bytes, seconds)"""
    conn = stomp.Connection12([broker], prefer_localhost=False, try_loopback_connect=False, auto_decode=False)
    if tls is not None:
        conn.set_ssl(for_hosts=[broker], cert_file=str(tls.cert_file), key_file=str(tls.key_file),
                     ca_certs=str(tls.ca_file))
    waiter = ReceiptWaiter()
    conn.set_listener("waiter", waiter)
    conn.connect(wait=True)
    if nodelay:
        conn.transport.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    queue = QueueSimple(str(queue_dir))
    sent = total = 0
    started = time.monotonic()
    name = queue.first()
    while name and sent < count:
        if queue.lock(name):
            body = queue.get(name)
            headers = {"empa-id": name, **({"persistent": "true"} if persistent else {})}
            conn.send(destination, body, headers=headers, receipt=name)
            waiter.wait(name)
            queue.remove(name)
            sent += 1
            total += len(body)
        name = queue.next()
    elapsed = time.monotonic() - started
    conn.disconnect()
    return sent, total, elapsed


def run_ours(root: Path, label: str, address: Tuple[str, int], tls: Optional[TlsFiles], host: Any, capath: Path,
             args: argparse.Namespace, log: Any, connections: int = 1) -> float:
    t0 = time.monotonic()
    total = fill(root / f"outgoing-{label}-{connections}", args.messages, args.size)
    print(f"  queued {args.messages} messages of {args.size} bytes ({total / 1e6:.0f} MB) "
          f"in {time.monotonic() - t0:.1f} s")
    queue = MessageQueue(root / f"outgoing-{label}-{connections}")
    signer = load_signer(host.cert, host.key, capath)
    members: List[Transport] = [
        StompTransport([address], f"/queue/bench.ours.{label}", tls=tls, window=args.window, log=log)
        for _ in range(connections)]
    transport = members[0] if connections == 1 else PooledTransport(members, log)
    sender = Sender(queue, signer, transport, journal=InflightJournal(root / "state" / "inflight", log), log=log)
    with RssSampler() as rss:
        result = sender.drain()
    rate = result.sent / result.duration
    print(f"  our sender, {connections} connection{'s' if connections > 1 else ''}: {result.sent} messages in "
          f"{result.duration:.1f} s: {rate:.0f} messages/s, {result.bytes / result.duration / 1e6:.1f} MB/s "
          f"(window {args.window}, signed, persistent)")
    print(f"    resident memory: start {rss.samples[0]:.0f} MB, peak {max(rss.samples):.0f} MB, "
          f"end {rss.samples[-1]:.0f} MB; at 25/50/75% of the drain: "
          + ", ".join(f"{rss.samples[int(len(rss.samples) * q)]:.0f}" for q in (0.25, 0.5, 0.75)) + " MB")
    if result.error or result.remaining:
        print(f"    NOT COMPLETE: {result.error} remaining={result.remaining}")
    return rate


def run_baselines(root: Path, label: str, address: Tuple[str, int], tls: Optional[TlsFiles],
                  args: argparse.Namespace, ours: float) -> None:
    for index, (nodelay, persistent) in enumerate(((False, False), (True, False), (True, True))):
        name = "bare stomp.py one by one" + (" + TCP_NODELAY" if nodelay else " (as apel/ssm)") + \
            (" + persistent" if persistent else "")
        base_dir = root / f"baseline-{label}-{index}"
        fill(base_dir, args.baseline, args.size)
        sent, size, elapsed = one_by_one(address, tls, f"/queue/bench.{label}.baseline{index}", base_dir,
                                         args.baseline, nodelay, persistent)
        rate = sent / elapsed
        print(f"  {name}: {sent} messages in {elapsed:.1f} s: {rate:.0f} messages/s, {size / elapsed / 1e6:.2f} MB/s"
              f" -> our sender's rate is {ours / rate:.1f}x this loop's")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=40 * 1024)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--baseline", type=int, default=1000, help="messages for each one-by-one loop")
    parser.add_argument("--rtt", type=float, default=20.0, help="round-trip time (ms) of the WAN case; 0: skip")
    parser.add_argument("--connections", type=int, default=3,
                        help="also run our sender with this many parallel connections (1: skip)")
    parser.add_argument("--plain", action="store_true", help="plain STOMP instead of TLS")
    args = parser.parse_args()
    configure_logging()
    log = get_logger("bench")
    version = stomp.__version__  # a tuple before stomp.py 8.1.1
    version = ".".join(map(str, version)) if isinstance(version, tuple) else version
    print(f"stomp.py {version}, cryptography {cryptography.__version__}, "
          f"Python {'.'.join(map(str, sys.version_info[:3]))}")
    with tempfile.TemporaryDirectory(prefix="ssm-bench-") as tmp:
        root = Path(tmp)
        ca = pki.CertificateAuthority("/DC=org/DC=example/CN=Bench CA")
        ca_file = ca.write_cert(root / "ca.pem")
        capath = pki.write_ca_directory(root / "certificates", [ca])
        host = ca.host("apel.example.org").write(root / "host")
        server = ca.server().write(root / "broker", "cert.pem", "key.pem")
        bundle = root / "broker-ca.pem"
        bundle.write_bytes(ca_bundle(capath))
        # with capath, as the daemon does: the broker's certificate is checked against the CRLs after the handshake
        tls = None if args.plain else TlsFiles(host.cert, host.key, bundle, capath)
        phases = [("loopback", 0.0)] + ([("wan", args.rtt)] if args.rtt > 0 else [])
        for label, rtt in phases:
            # a fresh broker per phase: messages nobody consumes pile up in it
            broker = ActiveMQBroker(root / f"activemq-{label}", tls=BrokerTls(server.cert, server.key, [ca_file]),
                                    heap_mb=1024).start()
            proxy = None
            try:
                port = broker.port if args.plain else broker.tls_port
                if rtt:
                    proxy = DelayProxy(("127.0.0.1", port), rtt / 2000.0)
                    port = proxy.port
                    print(f"\nthrough a proxy adding {rtt:g} ms round-trip time:")
                else:
                    print(f"ActiveMQ 5 on 127.0.0.1 ({'plain' if args.plain else 'TLS, client certificate'}), "
                          "KahaDB with journal syncs, a fresh broker per phase\n\nloopback:")
                ours = run_ours(root, label, ("localhost", port), tls, host, capath, args, log)
                if args.connections > 1:
                    run_ours(root, label, ("localhost", port), tls, host, capath, args, log, args.connections)
                run_baselines(root, label, ("localhost", port), tls, args, ours)
            finally:
                if proxy is not None:
                    proxy.close()
                broker.stop()
    print(f"\n(host: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
