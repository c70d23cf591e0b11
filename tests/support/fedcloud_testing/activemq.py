"""A throw-away Apache ActiveMQ broker (Debian ``activemq``) on loopback, for tests and benchmarks.

:class:`ActiveMQBroker` writes a minimal ``activemq.xml`` (KahaDB store, a
plain ``stomp://`` connector and, when given TLS credentials, a
``stomp+ssl://`` connector with ``needClientAuth``) into a directory of its
own, builds the Java key and trust stores from PEM credentials (``openssl
pkcs12`` and ``keytool``), starts the broker with ``java`` straight from
``/usr/share/activemq`` and waits (bounded) until the connectors listen.  Ports
are ephemeral on the first start and kept on :meth:`restart`, so clients can
reconnect to the same address; the message store survives restarts and
:meth:`kill` (SIGKILL, a crash).

Needs the Debian packages ``activemq`` and a Java runtime (``default-jre-headless``).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Sequence

ACTIVEMQ_HOME = Path(os.environ.get("ACTIVEMQ_HOME", "/usr/share/activemq"))
STORE_PASSWORD = "fedcloud-site-test"

_LISTENING = re.compile(r"Listening for connections at: (stomp(?:\+ssl)?)://[^:]+:(\d+)")
_JAVA_OPENS = ["--add-opens", "java.base/java.lang=ALL-UNNAMED", "--add-opens", "java.base/java.util=ALL-UNNAMED",
               "--add-opens", "java.base/java.net=ALL-UNNAMED", "--add-opens", "java.base/java.security=ALL-UNNAMED"]


class ActiveMQError(RuntimeError):
    """The broker could not be configured or started."""


def activemq_available() -> Optional[str]:
    """None when ActiveMQ, java, keytool and openssl are installed, else what is missing."""
    missing = [name for name in ("java", "keytool", "openssl") if shutil.which(name) is None]
    if not (ACTIVEMQ_HOME / "bin" / "activemq.jar").is_file():
        missing.append(f"{ACTIVEMQ_HOME}/bin/activemq.jar (Debian package activemq)")
    return ", ".join(missing) if missing else None


@dataclass(frozen=True)
class BrokerTls:
    """The broker's TLS connector: its certificate/key (PEM files) or a ready key store (PKCS#12, or JKS by its
    ``.jks`` suffix) holding them, and the CAs (PEM) its clients must chain to."""

    cert_file: Optional[Path]
    key_file: Optional[Path]
    client_ca_files: Sequence[Path]
    need_client_auth: bool = True
    keystore: Optional[Path] = None  # used as is instead of cert_file/key_file
    keystore_password: str = STORE_PASSWORD

    def __post_init__(self) -> None:
        if self.keystore is None and (self.cert_file is None or self.key_file is None):
            raise ValueError("BrokerTls needs cert_file and key_file, or a keystore")

    @property
    def keystore_type(self) -> str:
        return "JKS" if self.keystore is not None and self.keystore.suffix.lower() == ".jks" else "PKCS12"


class ActiveMQBroker:
    """One ActiveMQ 5 broker with a STOMP connector (and a STOMP+TLS one) on 127.0.0.1."""

    def __init__(self, directory: Path, tls: Optional[BrokerTls] = None, heap_mb: int = 512,
                 sync_journal: bool = True) -> None:
        self.directory = Path(directory)
        self.tls = tls
        self.heap_mb = heap_mb
        self.sync_journal = sync_journal
        self.port = 0
        self.tls_port = 0
        self._process: Optional[subprocess.Popen] = None
        self._log_offset = 0

    @property
    def pid(self) -> Optional[int]:
        return self._process.pid if self._process is not None else None

    @property
    def log_file(self) -> Path:
        return self.directory / "activemq.log"

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- configuration ---------------------------------------------------------------------------
    def _write_stores(self) -> None:
        assert self.tls is not None
        stores = self.directory / "stores"
        stores.mkdir(parents=True, exist_ok=True)
        keystore, truststore = stores / "broker.p12", stores / "trust.p12"
        for path in (keystore, truststore):
            if path.exists():
                path.unlink()
        if self.tls.keystore is None:
            _run(["openssl", "pkcs12", "-export", "-in", str(self.tls.cert_file), "-inkey", str(self.tls.key_file),
                  "-name", "broker", "-out", str(keystore), "-passout", f"pass:{STORE_PASSWORD}"])
        for index, ca_file in enumerate(self.tls.client_ca_files):
            _run(["keytool", "-importcert", "-noprompt", "-keystore", str(truststore), "-storetype", "PKCS12",
                  "-storepass", STORE_PASSWORD, "-alias", f"ca{index}", "-file", str(ca_file)])

    def _write_config(self) -> Path:
        conf = self.directory / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        data = self.directory / "data"
        connectors = [f'<transportConnector name="stomp" uri="stomp://127.0.0.1:{self.port}'
                      '?transport.closeAsync=false"/>']
        ssl_context = ""
        if self.tls is not None:
            stores = self.directory / "stores"
            keystore = self.tls.keystore or stores / "broker.p12"
            password = self.tls.keystore_password if self.tls.keystore is not None else STORE_PASSWORD
            ssl_context = (
                f'<sslContext><sslContext keyStore="file:{keystore}" keyStorePassword="{password}"'
                f' keyStoreType="{self.tls.keystore_type}" trustStore="file:{stores / "trust.p12"}"'
                f' trustStorePassword="{STORE_PASSWORD}" trustStoreType="PKCS12"/></sslContext>')
            auth = "true" if self.tls.need_client_auth else "false"
            connectors.append(f'<transportConnector name="stompssl" uri="stomp+ssl://127.0.0.1:{self.tls_port}'
                              f'?needClientAuth={auth}&amp;transport.closeAsync=false"/>')
        xml = f"""<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans.xsd
  http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" useJmx="false" brokerName="fedcloud-site-test"
          dataDirectory="{data}" schedulerSupport="false" advisorySupport="false" persistent="true">
    <persistenceAdapter>
      <kahaDB directory="{data / 'kahadb'}" enableJournalDiskSyncs="{'true' if self.sync_journal else 'false'}"/>
    </persistenceAdapter>
    {ssl_context}
    <transportConnectors>
      {chr(10).join(connectors)}
    </transportConnectors>
  </broker>
</beans>
"""
        path = conf / "activemq.xml"
        path.write_text(xml, encoding="utf-8")
        (conf / "log4j.properties").write_text(
            "log4j.rootLogger=INFO, out\n"
            "log4j.appender.out=org.apache.log4j.ConsoleAppender\n"
            "log4j.appender.out.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.out.layout.ConversionPattern=%d %-5p %c{1} - %m%n\n", encoding="utf-8")
        return path

    # -- life cycle -------------------------------------------------------------------------------
    def start(self, timeout: float = 90.0) -> ActiveMQBroker:
        """Start the broker and wait until its connectors listen; raises :class:`ActiveMQError`."""
        missing = activemq_available()
        if missing:
            raise ActiveMQError(f"ActiveMQ cannot run here, missing: {missing}")
        if self.running():
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.tls is not None and not (self.directory / "stores" / "trust.p12").exists():
            self._write_stores()
        config = self._write_config()
        conf = config.parent
        command = ["java", "-Xms64m", f"-Xmx{self.heap_mb}m", "-XX:+UseSerialGC", *_JAVA_OPENS,
                   f"-Dlog4j.configuration=file:{conf / 'log4j.properties'}",
                   f"-Dactivemq.home={ACTIVEMQ_HOME}", f"-Dactivemq.base={self.directory}",
                   f"-Dactivemq.conf={conf}", f"-Dactivemq.data={self.directory / 'data'}",
                   "-jar", str(ACTIVEMQ_HOME / "bin" / "activemq.jar"), "start", f"xbean:file:{config}"]
        self._log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with open(self.log_file, "ab") as log:
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                             cwd=str(self.directory), start_new_session=True,
                                             preexec_fn=_die_with_parent)
        try:
            self._wait_started(timeout)
        except ActiveMQError:
            self.kill()
            raise
        return self

    def _wait_started(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        wanted = {"stomp"} | ({"stomp+ssl"} if self.tls is not None else set())
        found = {}
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise ActiveMQError(f"ActiveMQ exited during start-up:\n{self.tail()}")
            text = self._new_log()
            for scheme, port in _LISTENING.findall(text):
                found[scheme] = int(port)
            if wanted <= set(found) and " started" in text and self._listening(found.values()):
                self.port = found["stomp"]
                self.tls_port = found.get("stomp+ssl", 0)
                return
            time.sleep(0.1)
        raise ActiveMQError(f"ActiveMQ did not start within {timeout:g} s:\n{self.tail()}")

    @staticmethod
    def _listening(ports: Iterable[int]) -> bool:
        for port in ports:
            try:
                with socket.create_connection(("127.0.0.1", int(port)), timeout=1):
                    pass
            except OSError:
                return False
        return True

    def _new_log(self) -> str:
        try:
            with open(self.log_file, "rb") as handle:
                handle.seek(self._log_offset)
                return handle.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self._new_log().splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the broker (SIGTERM, SIGKILL after ``timeout``)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)

    def kill(self) -> None:
        """Crash the broker (SIGKILL): connections drop without a word; the store keeps what it had synced."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.kill()
        process.wait(timeout=30)

    def restart(self, timeout: float = 90.0) -> ActiveMQBroker:
        """Start again on the same ports (waits for them to be free)."""
        self.stop()
        return self.start(timeout)

    def urls(self) -> List[str]:
        result = [f"127.0.0.1:{self.port}"]
        if self.tls_port:
            result.append(f"localhost:{self.tls_port}")
        return result

    def __enter__(self) -> ActiveMQBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the process that started the broker dies (no orphaned brokers)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _run(argv: List[str]) -> None:
    result = subprocess.run(argv, capture_output=True, timeout=120, check=False)
    if result.returncode != 0:
        raise ActiveMQError(f"{' '.join(argv[:2])} failed: {result.stderr.decode(errors='replace').strip()}")


__all__ = ["ActiveMQBroker", "ActiveMQError", "BrokerTls", "activemq_available", "STORE_PASSWORD"]
