"""Run a real single-node Apache Kafka broker (KRaft, combined broker+controller) on 127.0.0.1.

Used by the tests, the demo and CI. The broker jars come from Maven Central through
``deploy/kafka/pom.xml`` and are cached per Kafka version; the broker runs as a plain
``java`` child process, so nothing but Java 17 and Maven is needed.

    with LocalBroker() as broker:
        produce_to(broker.bootstrap_servers)

CLI::

    python -m deploy.broker resolve
    python -m deploy.broker start [--data-dir D] [--port P] [--foreground]
    python -m deploy.broker stop [--data-dir D]
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import weakref
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

log = logging.getLogger("deploy.broker")  # same name when run as ``python -m``

POM = Path(__file__).resolve().parent / "kafka" / "pom.xml"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CLI_DATA_DIR = REPO_ROOT / "var" / "kafka"
DEFAULT_CLIENT_PORT = 9092  # streams.config.Settings' default bootstrap address is 127.0.0.1:9092
STATE_FILE = "broker.json"
NODE_ID = 1
LOG_TAIL_LINES = 40

# Start time is mostly JVM warm-up. Measured on 2 CPUs (fresh data dir, format +
# start until metadata answers): plain JVM 1.77 s, C1-only JIT 1.35 s, C1 + the
# class-data-sharing archive (see LocalBroker.class_data_sharing) 0.9 s. The serial
# collector made no measurable difference, so G1 stays. C1-only costs peak
# throughput, which a test/demo broker never reaches. The heap stays modest so
# parallel CI jobs fit on one runner.
DEFAULT_JVM_ARGS: tuple[str, ...] = (
    "-Xms256m",
    "-Xmx512m",
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)


class BrokerStartError(RuntimeError):
    """The broker (or its jars) could not be brought up; the message says why."""


class KafkaResolveError(BrokerStartError):
    """The Kafka jars could not be resolved (missing mvn/java or a Maven failure)."""


def external_bootstrap() -> str | None:
    """Bootstrap servers of an externally managed Kafka; callers then start nothing."""
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None


def default_cache_dir() -> Path:
    env = os.environ.get("AFTERSALE_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "aftersale"


def kafka_version(pom: Path = POM) -> str:
    """The Kafka version pinned in the pom (single source of truth)."""
    root = ET.parse(pom).getroot()
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = root.find("m:properties/m:kafka.version", ns)
    if node is None or not (node.text or "").strip():
        raise KafkaResolveError(f"{pom} has no <properties><kafka.version>")
    return node.text.strip()


def java_executable() -> str:
    # Prefer JAVA_HOME like Kafka's own scripts do, so CI can pin a JDK.
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("java")
    if not found:
        raise KafkaResolveError(
            "java not found (set JAVA_HOME or put java on PATH); Kafka 3.9 needs Java 11+, we use 17"
        )
    return found


def _tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    # Parallel test workers may resolve at the same time; only one runs Maven.
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def resolve_jars(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return ``<cache>/kafka-<version>/libs`` holding every runtime jar of the broker.

    Maven runs only when the libs are missing or were copied for a different pom:
    a marker holding the pom's digest is written after a complete copy, so an
    interrupted copy is thrown away and redone.
    """
    version = kafka_version()
    base = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    home = base / f"kafka-{version}"
    libs = home / "libs"
    marker = home / ".resolved"
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()

    def done() -> bool:
        return marker.is_file() and marker.read_text().strip() == digest and libs.is_dir()

    if done():
        return libs
    with _file_lock(base / f"kafka-{version}.lock"):
        if done():  # another process finished while we waited for the lock
            return libs
        java_executable()  # fail early with a clear message; the jars are useless without java
        mvn = shutil.which("mvn")
        if not mvn:
            raise KafkaResolveError("mvn not found on PATH; it is needed once to fetch the Kafka jars")
        marker.unlink(missing_ok=True)
        shutil.rmtree(libs, ignore_errors=True)
        cmd = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
            "-DincludeScope=runtime",
        ]
        log.info("Resolving Kafka %s jars into %s", version, libs)
        started = time.monotonic()
        try:
            res = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=1800,
            )
        except subprocess.TimeoutExpired as exc:
            raise KafkaResolveError(f"mvn timed out after {exc.timeout}s: {' '.join(cmd)}") from exc
        if res.returncode != 0:
            raise KafkaResolveError(
                f"mvn failed with exit code {res.returncode}: {' '.join(cmd)}\n"
                f"--- last lines of mvn output ---\n{_tail(res.stdout)}"
            )
        if not any(libs.glob(f"kafka_*-{version}.jar")):
            raise KafkaResolveError(f"mvn succeeded but no kafka_*-{version}.jar is in {libs}")
        marker.write_text(digest + "\n")
        log.info("Resolved %d jars in %.1fs", len(list(libs.glob("*.jar"))), time.monotonic() - started)
    return libs


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(exclude: Sequence[int] = ()) -> int:
    """A free TCP port on 127.0.0.1, chosen *below* the kernel's ephemeral range.

    Ports from bind(0) are ephemeral: while the broker is down during a restart, a
    client reconnecting to it can be handed that very port as its own source port
    (TCP self-connect) and the broker can then not bind again.
    """
    low, _ = _ephemeral_range()
    lo, hi = 20000, max(20001, min(low, 32768))
    rng = random.SystemRandom()  # immune to random.seed() in tests (pytest-randomly, xdist workers)
    for _ in range(200):
        port = rng.randrange(lo, hi)
        if port not in exclude and _port_is_free(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # fall back to the kernel's pick
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _new_cluster_id() -> str:
    # Same shape as Kafka's Uuid.randomUuid(); a leading '-' would be read as a CLI flag.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _read_properties(path: Path) -> dict[str, str]:
    props: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")) and "=" in line:
            key, value = line.split("=", 1)
            props[key.strip()] = value.strip()
    return props


def _format_properties(props: Mapping[str, str]) -> str:
    # Java properties treat backslashes as escapes; paths here are POSIX.
    return "".join(f"{k}={v.replace(chr(92), chr(92) * 2)}\n" for k, v in props.items())


def _prop_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def die_with_parent_preexec(parent_pid: int):
    """preexec_fn that SIGTERMs the child (the broker, a worker) when the Python process dies
    (Linux only).

    Without it a SIGKILLed or crashed test run leaves a JVM or a worker holding ports and memory.
    The kernel fires it when the *thread* that forked exits, so it is only used
    when starting from the main thread.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before fork, not in the child
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM))
        if os.getppid() != parent_pid:  # parent died before prctl took effect
            os._exit(1)

    return preexec


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of the broker's TLS listeners: its certificate (chain, leaf first), its private key
    (unencrypted PKCS#8, ``BEGIN PRIVATE KEY``, as Kafka's PEM key store reads it) and the CA whose
    client certificates the mutual-TLS listener accepts."""

    certfile: str | os.PathLike[str]
    keyfile: str | os.PathLike[str]
    cafile: str | os.PathLike[str]


_LIVE_BROKERS: "weakref.WeakSet[LocalBroker]" = weakref.WeakSet()


@atexit.register
def _stop_live_brokers() -> None:
    for broker in list(_LIVE_BROKERS):
        with contextlib.suppress(Exception):
            broker.stop(timeout=15)


class LocalBroker:
    """A single-node KRaft Kafka broker on 127.0.0.1, run as a ``java`` child process.

    ``data_dir`` keeps configs, the log file and the Kafka log dirs; a broker restarted
    on the same ``data_dir`` keeps its topics and messages. When ``data_dir`` is not
    given a temp dir is used and removed on context-manager exit.

    ``scram_users`` ([(name, password)]) are written into the metadata at format time
    for SCRAM-SHA-256 and SCRAM-SHA-512, and enable an extra SASL_PLAINTEXT listener
    (``sasl_bootstrap_servers``); the PLAINTEXT listener stays for the readiness probe.
    ``tls`` (:class:`TlsFiles`) adds an SSL listener (``ssl_bootstrap_servers``), one that also requires
    a client certificate signed by ``tls.cafile`` (``mtls_bootstrap_servers``, ``ssl.client.auth=required``)
    and, with ``scram_users``, a SASL_SSL listener (``sasl_ssl_bootstrap_servers``); inter-broker and
    controller traffic stay plaintext.
    ``extra_config`` overrides any generated broker property (value ``None`` removes it).

    ``class_data_sharing``: the first broker run on a machine records the classes it
    loads into a JVM class-data-sharing archive in the jar cache (costs ~0.6 s extra
    start and ~1.6 s extra stop, once); later runs map it and start ~0.45 s faster.
    The JVM silently ignores an archive that does not fit, so it is safe to keep on.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        port: int | None = None,
        controller_port: int | None = None,
        extra_config: Mapping[str, Any] | None = None,
        log_file: str | os.PathLike[str] | None = None,
        *,
        scram_users: Sequence[tuple[str, str]] = (),
        sasl_port: int | None = None,
        tls: TlsFiles | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        jvm_args: Sequence[str] | None = None,
        die_with_parent: bool = True,
        class_data_sharing: bool = True,
    ) -> None:
        self._owns_data_dir = data_dir is None
        self.data_dir = (
            Path(tempfile.mkdtemp(prefix="aftersale-kafka-")) if data_dir is None else Path(data_dir).resolve()
        )
        self.log_file = Path(log_file).resolve() if log_file else self.data_dir / "broker.log"
        self._auto_ports = port is None and controller_port is None and sasl_port is None
        self.scram_users = [(str(n), str(p)) for n, p in scram_users]
        self.port = port or free_port()
        self.controller_port = controller_port or free_port(exclude=[self.port])
        self.sasl_port: int | None = None
        if self.scram_users or sasl_port:
            self.sasl_port = sasl_port or free_port(exclude=[self.port, self.controller_port])
        self.tls = tls
        self.ssl_port: int | None = None  # ports of the TLS listeners, always picked here
        self.mtls_port: int | None = None
        self.sasl_ssl_port: int | None = None
        self._pick_tls_ports()
        self.extra_config = dict(extra_config or {})
        self.cache_dir = cache_dir
        self.jvm_args = list(DEFAULT_JVM_ARGS if jvm_args is None else jvm_args)
        self.die_with_parent = die_with_parent
        self.class_data_sharing = class_data_sharing
        self._cds_pending: tuple[Path, Path, Path] | None = None  # (dump file, final archive, libs)
        self.cluster_id: str | None = None
        self.start_seconds: float | None = None  # wall time of the last successful start()
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_once = False

    # ---- paths and config -------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap_servers(self) -> str | None:
        return f"127.0.0.1:{self.sasl_port}" if self.sasl_port else None

    @property
    def ssl_bootstrap_servers(self) -> str | None:
        """The SSL listener: TLS, no client certificate asked for."""
        return f"127.0.0.1:{self.ssl_port}" if self.ssl_port else None

    @property
    def mtls_bootstrap_servers(self) -> str | None:
        """The SSL listener that requires a client certificate signed by ``tls.cafile``."""
        return f"127.0.0.1:{self.mtls_port}" if self.mtls_port else None

    @property
    def sasl_ssl_bootstrap_servers(self) -> str | None:
        return f"127.0.0.1:{self.sasl_ssl_port}" if self.sasl_ssl_port else None

    def _pick_tls_ports(self) -> None:
        if self.tls is None:
            return
        taken = [p for p in (self.port, self.controller_port, self.sasl_port) if p]
        for name in ("ssl_port", "mtls_port", *(["sasl_ssl_port"] if self.scram_users else [])):
            port = free_port(exclude=taken)
            setattr(self, name, port)
            taken.append(port)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def log_dirs(self) -> Path:
        return self.data_dir / "kraft-logs"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log4j_file(self) -> Path:
        return self.data_dir / "log4j.properties"

    @property
    def keystore_file(self) -> Path:
        """The broker's key and certificate chain in one PEM file, as Kafka's PEM key store wants them."""
        return self.data_dir / "tls-keystore.pem"

    def broker_config(self) -> dict[str, str]:
        listeners = [f"PLAINTEXT://127.0.0.1:{self.port}", f"CONTROLLER://127.0.0.1:{self.controller_port}"]
        advertised = [f"PLAINTEXT://127.0.0.1:{self.port}"]
        protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
        config: dict[str, str] = {
            "process.roles": "broker,controller",
            "node.id": str(NODE_ID),
            "controller.quorum.voters": f"{NODE_ID}@127.0.0.1:{self.controller_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.log_dirs),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",  # 50 partitions by default: slow first group join
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "group.initial.rebalance.delay.ms": "0",
            # After a crash (kill()) the restarted controller refuses the broker's new
            # registration until the old session expires (default 9 s, measured 13 s to
            # ready). 3 s brings it to ~3.7 s; heartbeats every 0.5 s keep 6 misses of slack.
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "3000",
            "auto.create.topics.enable": "false",
        }
        if self.sasl_port:
            listeners.append(f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}")
            advertised.append(f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}")
            protocols.append("SASL_PLAINTEXT:SASL_PLAINTEXT")
            config["sasl.enabled.mechanisms"] = "SCRAM-SHA-256,SCRAM-SHA-512"
            for mech in ("scram-sha-256", "scram-sha-512"):
                config[f"listener.name.sasl_plaintext.{mech}.sasl.jaas.config"] = (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                )
        if self.tls is not None:
            tls_listeners = [("SSL", self.ssl_port, "SSL"), ("MTLS", self.mtls_port, "SSL")]
            if self.sasl_ssl_port:
                tls_listeners.append(("SASL_SSL", self.sasl_ssl_port, "SASL_SSL"))
            for name, port, protocol in tls_listeners:
                listeners.append(f"{name}://127.0.0.1:{port}")
                advertised.append(f"{name}://127.0.0.1:{port}")
                protocols.append(f"{name}:{protocol}")
            config.update(
                {
                    "ssl.keystore.type": "PEM",
                    "ssl.keystore.location": str(self.keystore_file),
                    "ssl.truststore.type": "PEM",
                    "ssl.truststore.location": str(Path(self.tls.cafile).resolve()),
                    "ssl.client.auth": "none",
                    "listener.name.mtls.ssl.client.auth": "required",
                }
            )
            if self.sasl_ssl_port:
                config.setdefault("sasl.enabled.mechanisms", "SCRAM-SHA-256,SCRAM-SHA-512")
                for mech in ("scram-sha-256", "scram-sha-512"):
                    config[f"listener.name.sasl_ssl.{mech}.sasl.jaas.config"] = (
                        "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                    )
        config["listeners"] = ",".join(listeners)
        config["advertised.listeners"] = ",".join(advertised)
        config["listener.security.protocol.map"] = ",".join(protocols)
        for key, value in self.extra_config.items():
            if value is None:
                config.pop(key, None)
            else:
                config[key] = _prop_value(value)
        return config

    def _log4j_config(self) -> str:
        # One human-readable file; the noisiest loggers are turned down like Kafka's own config.
        path = str(self.log_file).replace("\\", "\\\\")
        return (
            "log4j.rootLogger=INFO, file\n"
            "log4j.appender.file=org.apache.log4j.FileAppender\n"
            f"log4j.appender.file.File={path}\n"
            "log4j.appender.file.Append=true\n"
            "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
            "log4j.logger.kafka.request.logger=WARN\n"
            "log4j.logger.org.apache.kafka.clients.NetworkClient=WARN\n"
            "log4j.logger.org.apache.kafka.common.utils.AppInfoParser=WARN\n"
        )

    def _write_configs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        if self.tls is not None:
            key = Path(self.tls.keyfile).read_text()
            if "BEGIN PRIVATE KEY" not in key:
                raise BrokerStartError(
                    f"{self.tls.keyfile}: Kafka's PEM key store needs an unencrypted PKCS#8 key (BEGIN PRIVATE KEY)"
                )
            self.keystore_file.touch(mode=0o600)  # holds the key: never readable by others, not even briefly
            self.keystore_file.write_text(key.rstrip("\n") + "\n" + Path(self.tls.certfile).read_text())
        self.config_file.write_text(_format_properties(self.broker_config()))
        self.log4j_file.write_text(self._log4j_config())

    def _java_base(self, libs: Path, *, dump_cds: bool = False) -> list[str]:
        java = java_executable()
        return [
            java,
            *self.jvm_args,
            *self._cds_args(libs, java, dump=dump_cds),
            f"-XX:ErrorFile={self.data_dir}/hs_err_pid%p.log",  # crash reports stay out of the cwd
            f"-Dlog4j.configuration={self.log4j_file.as_uri()}",
            "-cp",
            f"{libs}/*",
        ]

    # ---- class data sharing ---------------------------------------------

    def _cds_archive(self, libs: Path, java: str) -> Path:
        # The archive is only valid for this JVM build, these jars and these flags.
        real_java = Path(java).resolve()
        jvm_lib = real_java.parent.parent / "lib" / "server" / "libjvm.so"
        stamp = f"{jvm_lib.stat().st_mtime_ns}:{jvm_lib.stat().st_size}" if jvm_lib.exists() else ""
        key = "\0".join([str(real_java), stamp, str(libs), *self.jvm_args])
        return libs.parent / "cds" / f"broker-{hashlib.sha256(key.encode()).hexdigest()[:16]}.jsa"

    def _cds_usable(self, java: str) -> bool:
        if not self.class_data_sharing or any(a.startswith("-Xshare") for a in self.jvm_args):
            return False
        # A dynamic archive sits on top of the JDK's base archive; without it the JVM
        # refuses to even start in dump mode.
        return (Path(java).resolve().parent.parent / "lib" / "server" / "classes.jsa").is_file()

    def _cds_args(self, libs: Path, java: str, *, dump: bool) -> list[str]:
        if not self._cds_usable(java):
            return []
        archive = self._cds_archive(libs, java)
        if archive.is_file():
            return [f"-XX:SharedArchiveFile={archive}"]
        # Only a broker we will stop ourselves can publish the archive it dumps at exit.
        if not dump or not self.die_with_parent:
            return []
        archive.parent.mkdir(parents=True, exist_ok=True)
        for stale in archive.parent.glob("*.tmp.jsa"):  # left by runs that died before publishing
            with contextlib.suppress(OSError):
                if time.time() - stale.stat().st_mtime > 600:
                    stale.unlink()
        tmp = archive.with_name(f"{archive.stem}.{os.getpid()}.{id(self)}.tmp.jsa")
        self._cds_pending = (tmp, archive, libs)
        # The dump lists every class it cannot archive as a warning; keep the broker log readable.
        return [f"-XX:ArchiveClassesAtExit={tmp}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]

    def _finish_cds(self, clean_exit: bool) -> None:
        if self._cds_pending is None:
            return
        tmp, archive, libs = self._cds_pending
        self._cds_pending = None
        try:
            if clean_exit and tmp.is_file() and tmp.stat().st_size > 0 and self._cds_valid(tmp, libs):
                os.replace(tmp, archive)  # atomic: concurrent brokers never see half an archive
                log.info("Saved JVM class-data archive %s for faster broker starts", archive)
            else:
                tmp.unlink(missing_ok=True)
        except OSError as exc:
            log.debug("Could not publish class-data archive %s: %s", archive, exc)

    def _cds_valid(self, archive: Path, libs: Path) -> bool:
        # A truncated archive crashes the JVM (SIGBUS) at every later start, so prove
        # this one maps (-Xshare:on fails instead of falling back) before publishing. ~60 ms.
        cmd = [
            java_executable(),
            *self.jvm_args,
            "-Xshare:on",
            f"-XX:SharedArchiveFile={archive}",
            f"-XX:ErrorFile={self.data_dir}/hs_err_pid%p.log",
            "-cp",
            f"{libs}/*",
            "-version",
        ]
        try:
            return (
                subprocess.run(
                    cmd,
                    cwd=self.data_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=60,
                ).returncode
                == 0
            )
        except (OSError, subprocess.TimeoutExpired):
            return False

    def _drop_cds(self) -> None:
        """Stop using class-data sharing in this broker and delete its archive."""
        self.class_data_sharing = False
        with contextlib.suppress(OSError, BrokerStartError):
            self._cds_archive(resolve_jars(self.cache_dir), java_executable()).unlink(missing_ok=True)

    # ---- log helpers ------------------------------------------------------

    def _log_offset(self) -> int:
        try:
            return self.log_file.stat().st_size
        except FileNotFoundError:
            return 0

    def log_tail(self, lines: int = LOG_TAIL_LINES, since: int = 0) -> str:
        """Last lines of the broker log written after byte offset ``since``."""
        try:
            with open(self.log_file, "rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                start = max(since, size - 256 * 1024)
                fh.seek(start)
                data = fh.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log file)"
        return _tail(data, lines) or "(log is empty)"

    def first_error(self, since: int = 0) -> str | None:
        """The first ERROR/FATAL entry (with its exception line) logged after offset ``since``.

        Kafka logs dozens of shutdown lines after the real cause, so the tail alone often
        misses it.
        """
        try:
            with open(self.log_file, "rb") as fh:
                fh.seek(since)
                lines = fh.read().decode("utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return None
        for i, line in enumerate(lines):
            if " ERROR " in line or " FATAL " in line or line.startswith(("Exception in thread", "Error:")):
                detail = [line]
                for nxt in lines[i + 1 : i + 3]:
                    if nxt.startswith("[") or nxt.startswith("\tat "):
                        break
                    detail.append(nxt)
                return "\n".join(detail)
        return None

    def _fail(self, reason: str, since: int) -> BrokerStartError:
        cause = self.first_error(since)
        first = f"first error in the log:\n{cause}\n" if cause else ""
        return BrokerStartError(
            f"Kafka broker at {self.bootstrap_servers} (data dir {self.data_dir}) failed to start: {reason}\n"
            f"{first}--- last {LOG_TAIL_LINES} lines of {self.log_file} ---\n{self.log_tail(since=since)}"
        )

    # ---- storage ----------------------------------------------------------

    def is_formatted(self) -> bool:
        return (self.log_dirs / "meta.properties").is_file()

    def _format_storage(self, libs: Path, since: int) -> None:
        """Format the KRaft log dir once; a restart on the same data_dir keeps its data."""
        if self.is_formatted():
            if self.scram_users:
                log.debug("%s already formatted; SCRAM users from the first format are kept", self.log_dirs)
            return
        cmd = [
            *self._java_base(libs),
            "kafka.tools.StorageTool",
            "format",
            "-t",
            _new_cluster_id(),
            "-c",
            str(self.config_file),
        ]
        for name, password in self.scram_users:
            for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
                cmd += ["--add-scram", f"{mech}=[name={name},password={password}]"]
        try:
            res = subprocess.run(
                cmd,
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=120,
            )
        except subprocess.TimeoutExpired as exc:
            raise self._fail("formatting storage timed out after 120s", since) from exc
        output = res.stdout.decode("utf-8", errors="replace")
        with open(self.log_file, "a", encoding="utf-8") as fh:  # keep the tool's words with the broker log
            fh.write(f"[StorageTool format, exit {res.returncode}]\n{output}")
        if res.returncode != 0:
            raise self._fail(f"formatting storage failed (exit code {res.returncode})", since)

    # ---- lifecycle --------------------------------------------------------

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 60) -> "LocalBroker":
        """Format (first time only), launch the broker and wait until it serves metadata."""
        if self.is_running():
            return self
        port_retries = 2 if (self._auto_ports and not self._started_once) else 0
        while True:
            since = self._log_offset()
            try:
                self._start_once(timeout, since)
                self._started_once = True
                return self
            except BrokerStartError as exc:
                # A port picked by us can be taken by someone else before Java binds it.
                if port_retries and "Address already in use" in str(exc):
                    port_retries -= 1
                    log.warning("Port clash on %s, retrying with new ports", self.bootstrap_servers)
                    self.port = free_port()
                    self.controller_port = free_port(exclude=[self.port])
                    if self.sasl_port:
                        self.sasl_port = free_port(exclude=[self.port, self.controller_port])
                    self._pick_tls_ports()
                    continue
                if self.class_data_sharing and self._jvm_died(since):
                    log.warning("The JVM failed to start with class-data sharing; retrying without it")
                    self._drop_cds()
                    continue
                raise

    def _jvm_died(self, since: int) -> bool:
        """True when the JVM itself failed (crash or VM init error), as opposed to Kafka."""
        try:
            with open(self.log_file, "rb") as fh:
                fh.seek(since)
                text = fh.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return False
        return (
            "A fatal error has been detected by the Java Runtime" in text
            or "Error occurred during initialization of VM" in text
        )

    def _start_once(self, timeout: float, since: int) -> None:
        t0 = time.monotonic()
        libs = resolve_jars(self.cache_dir)
        self._write_configs()
        self._format_storage(libs, since)
        self.cluster_id = _read_properties(self.log_dirs / "meta.properties").get("cluster.id")

        cmd = [*self._java_base(libs, dump_cds=True), "kafka.Kafka", str(self.config_file)]
        log.info("Starting Kafka broker on %s (data dir %s)", self.bootstrap_servers, self.data_dir)
        log.debug("Broker command: %s", " ".join(cmd))
        with open(self.log_file, "ab") as out:
            self._proc = subprocess.Popen(
                cmd,
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Own session: a Ctrl-C aimed at pytest/the CLI does not hit the JVM
                # mid-test; we stop it ourselves, cleanly.
                start_new_session=True,
                preexec_fn=die_with_parent_preexec(os.getpid()) if self.die_with_parent else None,
            )
        if self.die_with_parent:
            _LIVE_BROKERS.add(self)
        try:
            self._wait_ready(t0 + timeout, since)
        except BaseException:
            self._terminate(grace=5)
            raise
        self.start_seconds = time.monotonic() - t0
        log.info(
            "Kafka broker ready at %s in %.2fs (pid %d)", self.bootstrap_servers, self.start_seconds, self._proc.pid
        )

    def _wait_ready(self, deadline: float, since: int) -> None:
        """Wait until our broker answers a metadata request listing itself.

        In KRaft the broker only processes requests once it is unfenced, i.e. able to
        host partitions, so a metadata answer that lists it means topics can be created.
        The cluster id check makes sure we are not talking to another broker that
        happens to own the port.
        """
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(
            {
                "bootstrap.servers": self.bootstrap_servers,
                "log_level": 0,  # connection-refused noise while the JVM boots
                "reconnect.backoff.ms": 50,
                "reconnect.backoff.max.ms": 250,
                "socket.connection.setup.timeout.ms": 2000,
            }
        )
        last = "no answer yet"
        while True:
            assert self._proc is not None
            code = self._proc.poll()
            if code is not None:
                raise self._fail(f"the broker process exited with code {code}", since)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._fail(f"not ready within the timeout (last probe: {last})", since)
            try:
                md = admin.list_topics(timeout=max(0.2, min(1.0, remaining)))
            except KafkaException as exc:
                last = str(exc.args[0]) if exc.args else repr(exc)
                time.sleep(0.05)
                continue
            if md.cluster_id != self.cluster_id:
                last = f"port answered with cluster id {md.cluster_id!r}, ours is {self.cluster_id!r}"
                time.sleep(0.1)
                continue
            if NODE_ID in md.brokers:
                if self._proc.poll() is None:
                    return
                continue
            last = f"metadata lists brokers {sorted(md.brokers)} but not node {NODE_ID}"
            time.sleep(0.1)

    def _terminate(self, grace: float) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                log.warning("Kafka broker pid %d ignored SIGTERM for %.0fs; killing it", proc.pid, grace)
                self.kill()
        # 143 = exited through Kafka's SIGTERM shutdown hook, the only way the archive is complete.
        self._finish_cds(clean_exit=proc.returncode in (0, 143))
        _LIVE_BROKERS.discard(self)
        return proc.returncode

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM and wait for Kafka's clean shutdown; SIGKILL after ``timeout``. Returns the exit code."""
        if not self.is_running():  # never started, already stopped, or crashed
            self._finish_cds(clean_exit=False)
            _LIVE_BROKERS.discard(self)
            return self._proc.returncode if self._proc else None
        t0 = time.monotonic()
        code = self._terminate(grace=timeout)
        log.info("Kafka broker on %s stopped (exit %s) in %.2fs", self.bootstrap_servers, code, time.monotonic() - t0)
        return code

    def kill(self) -> None:
        """SIGKILL the broker right away (simulates a crash; data on disk stays)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self._finish_cds(clean_exit=False)
        _LIVE_BROKERS.discard(self)

    def restart(self, timeout: float = 60) -> "LocalBroker":
        """Stop and start again on the same data dir and ports."""
        self.stop()
        return self.start(timeout=timeout)

    def cleanup(self) -> None:
        """Stop and, if the data dir is a temp dir we made, delete it."""
        self.stop()
        if self._owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> "LocalBroker":
        try:
            return self.start()
        except BaseException:
            self.cleanup()  # __exit__ is not called when __enter__ raises
            raise

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.is_running() else "stopped"
        return f"<LocalBroker {self.bootstrap_servers} {state} data_dir={self.data_dir}>"


# ---- CLI ------------------------------------------------------------------


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_our_broker(pid: int, data_dir: Path) -> bool:
    """Guard against a recycled pid: the process must be Kafka running our server.properties."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return _pid_alive(pid)  # no /proc (not Linux): trust the pid file
    return b"kafka.Kafka" in argv and str(data_dir / "server.properties").encode() in argv


def _read_state(data_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((data_dir / STATE_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _write_state(broker: LocalBroker, running: bool = True) -> None:
    # Kept (with pid null) after a stop so the next ``start`` can reuse the same ports.
    state = {
        "pid": broker.pid if running else None,
        "bootstrap_servers": broker.bootstrap_servers,
        "sasl_bootstrap_servers": broker.sasl_bootstrap_servers,
        "port": broker.port,
        "controller_port": broker.controller_port,
        "data_dir": str(broker.data_dir),
        "log_file": str(broker.log_file),
        "cluster_id": broker.cluster_id,
    }
    tmp = broker.data_dir / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(broker.data_dir / STATE_FILE)


def stop_detached(data_dir: Path, timeout: float = 30) -> bool:
    """Stop a broker started with ``start`` (no --foreground). False if none was running."""
    state = _read_state(data_dir)
    if not state or not state.get("pid"):
        return False
    pid = int(state["pid"])
    running = _pid_alive(pid) and _is_our_broker(pid, data_dir)
    if running:
        log.info("Stopping Kafka broker pid %d (%s)", pid, state.get("bootstrap_servers"))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _pid_alive(pid):
            log.warning("Broker pid %d still alive after %.0fs; sending SIGKILL", pid, timeout)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            while _pid_alive(pid) and time.monotonic() < deadline + 10:
                time.sleep(0.1)
    state["pid"] = None
    (data_dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
    return running


def running_broker(data_dir: Path) -> str | None:
    """Bootstrap address of a broker that ``start`` left running in ``data_dir``, else None."""
    state = _read_state(Path(data_dir))
    if (
        state
        and state.get("pid")
        and _pid_alive(int(state["pid"]))
        and _is_our_broker(int(state["pid"]), Path(data_dir))
    ):
        return str(state["bootstrap_servers"])
    return None


def _print_address(bootstrap: str, data_dir: Path) -> None:
    """The address on stdout (scripts read it), and how to use it on stderr."""
    print(bootstrap, flush=True)
    if bootstrap == f"127.0.0.1:{DEFAULT_CLIENT_PORT}":
        hint = "the other aftersale commands use this address by default (KAFKA_BOOTSTRAP_SERVERS unset)"
    else:
        hint = f"point the other aftersale commands at it: export KAFKA_BOOTSTRAP_SERVERS={bootstrap}"
    stop = "" if data_dir == DEFAULT_CLI_DATA_DIR else f" --data-dir {data_dir}"
    print(
        f"Kafka broker at {bootstrap}; {hint}; stop it with `aftersale broker stop{stop}`", file=sys.stderr, flush=True
    )


def _cli_start(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir).resolve()
    state = _read_state(data_dir)
    if running_broker(data_dir):
        log.info("Broker already running (pid %s)", state["pid"])
        _print_address(state["bootstrap_servers"], data_dir)
        return 0
    port, cport = args.port, None
    if state and port is None:
        # Keep the address stable across CLI restarts of the same data dir when possible.
        if _port_is_free(int(state["port"])) and _port_is_free(int(state["controller_port"])):
            port, cport = int(state["port"]), int(state["controller_port"])
    if port is None and _port_is_free(DEFAULT_CLIENT_PORT):
        port = DEFAULT_CLIENT_PORT  # what every command uses when KAFKA_BOOTSTRAP_SERVERS is unset
    broker = LocalBroker(data_dir=data_dir, port=port, controller_port=cport, die_with_parent=args.foreground)
    if args.foreground:
        # Treat SIGTERM like Ctrl-C, installed before start so no signal slips through.
        def on_term(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, on_term)
    try:
        try:
            broker.start(timeout=args.timeout)
        except BrokerStartError as exc:
            print(exc, file=sys.stderr)
            return 1
        _write_state(broker)
        _print_address(broker.bootstrap_servers, data_dir)
        if not args.foreground:
            return 0
        assert broker._proc is not None
        code = broker._proc.wait()
        if code in (0, 143):  # stopped by `stop` or a SIGTERM from elsewhere
            log.info("Broker stopped (exit %s)", code)
            return 0
        log.error("Broker exited with code %s\n%s", code, broker.log_tail())
        return 1
    except KeyboardInterrupt:
        log.info("Interrupted; stopping the broker")
        broker.stop()  # no-op if start() already cleaned up a half-started broker
        return 0
    finally:
        if args.foreground and broker.pid is not None:
            _write_state(broker, running=False)


def main(argv: Sequence[str] | None = None, prog: str = "python -m deploy.broker") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("resolve", help="download the Kafka jars into the cache and print their folder")
    p_start = sub.add_parser("start", help="start a broker; prints its bootstrap address")
    p_start.add_argument("--data-dir", default=str(DEFAULT_CLI_DATA_DIR), help="default: var/kafka in the repo")
    p_start.add_argument(
        "--port",
        type=int,
        default=None,
        help="default: the last port used, else 9092 (the commands' default) if free, else a free one",
    )
    p_start.add_argument("--timeout", type=float, default=60, help="seconds to wait for the broker (default 60)")
    p_start.add_argument("--foreground", action="store_true", help="run until Ctrl-C, then stop cleanly")
    p_stop = sub.add_parser("stop", help="stop a broker started without --foreground")
    p_stop.add_argument("--data-dir", default=str(DEFAULT_CLI_DATA_DIR), help="default: var/kafka in the repo")
    p_stop.add_argument("--timeout", type=float, default=30)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)

    if args.command == "resolve":
        try:
            print(resolve_jars())
        except KafkaResolveError as exc:
            print(exc, file=sys.stderr)
            return 1
        return 0
    if args.command == "start":
        return _cli_start(args)
    if args.command == "stop":
        if not stop_detached(Path(args.data_dir).resolve(), timeout=args.timeout):
            log.info("No running broker recorded in %s", Path(args.data_dir) / STATE_FILE)
        return 0
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
