"""Settings from the environment, read once at start-up (never inside the decision core)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .security import problems as security_problems


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    try:
        return int(raw) if raw else default
    except ValueError:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from None


def load_experiments(path: str | Path | None) -> tuple:
    """Experiments from a TOML file (streams/core/experiments.py); exits with what is wrong."""
    from .core.experiments import ExperimentConfigError, loads

    if not path:
        return ()
    try:
        return loads(Path(path).read_text())
    except OSError as e:
        raise SystemExit(f"AFTERSALE_EXPERIMENTS: cannot read {path}: {e}") from None
    except ExperimentConfigError as e:
        raise SystemExit(f"AFTERSALE_EXPERIMENTS {path}: {e}") from None


COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")  # what aiokafka can produce (with cramjam)


@dataclass(frozen=True)
class Settings:
    bootstrap_servers: str = "127.0.0.1:9092"
    app_id: str = "aftersale"  # also the topic prefix, so several installations can share a cluster
    partitions: int = 4  # of every input, internal and changelog topic (co-partitioning needs one number)
    replication_factor: int = 1
    data_dir: Path = Path("var/worker")
    web_port: int = 6066
    clock: str = "wall"  # wall: decide with the wall clock (live); event: with event time (replay, demo)
    tick_interval: float = 5.0  # seconds between wall-clock ticks that fire scheduled decisions (live)
    # Inputs decided per batch: outputs are acknowledged and state written once per batch. A batch
    # closes when full or `batch_within` seconds after it opened, which bounds the added latency.
    batch_max: int = 500
    batch_within: float = 0.005
    # RocksDB block cache and memtables of all the worker's stores together (streams/runtime/rocksdb_memory.py).
    rocksdb_memory_mb: int = 128
    # Scheduled decisions held in memory at once, at most (about): when more fall due together (after
    # downtime, or an event-time jump) the worker makes those durable (outputs acknowledged, state and
    # changelog written) before it takes the next ones, so its memory stays bounded.
    fire_limit: int = 2000
    # Compression of what the worker produces (changelogs, outputs, dead letters), per batch of records:
    # the broker stores and serves the batches as compressed. none | gzip | snappy | lz4 | zstd.
    compression: str = "zstd"
    warm_start: str | None = None  # learned.json of a replay of past orders (streams/core/warm.py)
    experiments: str | None = None  # experiments file (TOML, docs/experiments.md); none: no experiments
    instance_id: str | None = None  # static group membership: a restarted worker gets its partitions back at once
    session_timeout: float = 30.0  # seconds before a silent worker's partitions move elsewhere
    # Token for every HTTP view but /health and /ready (streams/webauth.py); unset: the worker makes
    # one and keeps it in <data_dir>/web-token.
    web_token: str | None = field(default=None, repr=False)
    schema_registry_url: str | None = None
    schema_registry_auth: str | None = None
    # Kafka client security, turned into Faust and librdkafka settings by streams/security.py.
    security_protocol: str = "PLAINTEXT"  # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    sasl_mechanism: str = "SCRAM-SHA-512"  # or SCRAM-SHA-256
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)  # kept out of logs and tracebacks
    ssl_cafile: str | None = None  # CA bundle that signed the brokers' certificates (default: the system's)
    ssl_certfile: str | None = None  # client certificate and key, for brokers that require mutual TLS
    ssl_keyfile: str | None = None
    ssl_key_password: str | None = field(default=None, repr=False)
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        env = os.environ
        values = dict(
            bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS", cls.bootstrap_servers),
            app_id=env.get("AFTERSALE_APP_ID", cls.app_id),
            partitions=_int("AFTERSALE_PARTITIONS", cls.partitions),
            replication_factor=_int("AFTERSALE_REPLICATION_FACTOR", cls.replication_factor),
            data_dir=Path(env.get("AFTERSALE_DATA_DIR", str(cls.data_dir))),
            web_port=_int("AFTERSALE_WEB_PORT", cls.web_port),
            clock=env.get("AFTERSALE_CLOCK", cls.clock),
            tick_interval=float(env.get("AFTERSALE_TICK_INTERVAL") or cls.tick_interval),
            batch_max=_int("AFTERSALE_BATCH_MAX", cls.batch_max),
            batch_within=float(env.get("AFTERSALE_BATCH_WITHIN") or cls.batch_within),
            rocksdb_memory_mb=_int("AFTERSALE_ROCKSDB_MEMORY_MB", cls.rocksdb_memory_mb),
            fire_limit=_int("AFTERSALE_FIRE_LIMIT", cls.fire_limit),
            compression=(env.get("AFTERSALE_COMPRESSION") or cls.compression).lower(),
            warm_start=env.get("AFTERSALE_WARM_START") or None,
            experiments=env.get("AFTERSALE_EXPERIMENTS") or None,
            instance_id=env.get("AFTERSALE_INSTANCE_ID") or None,
            session_timeout=float(env.get("AFTERSALE_SESSION_TIMEOUT") or cls.session_timeout),
            web_token=env.get("AFTERSALE_WEB_TOKEN") or None,
            schema_registry_url=env.get("SCHEMA_REGISTRY_URL") or None,
            schema_registry_auth=env.get("SCHEMA_REGISTRY_BASIC_AUTH") or None,
            security_protocol=(env.get("AFTERSALE_SECURITY_PROTOCOL") or cls.security_protocol).upper(),
            sasl_mechanism=(env.get("AFTERSALE_SASL_MECHANISM") or cls.sasl_mechanism).upper(),
            sasl_username=env.get("AFTERSALE_SASL_USERNAME") or None,
            sasl_password=env.get("AFTERSALE_SASL_PASSWORD") or None,
            ssl_cafile=env.get("AFTERSALE_SSL_CAFILE") or None,
            ssl_certfile=env.get("AFTERSALE_SSL_CERTFILE") or None,
            ssl_keyfile=env.get("AFTERSALE_SSL_KEYFILE") or None,
            ssl_key_password=env.get("AFTERSALE_SSL_KEY_PASSWORD") or None,
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        if settings.clock not in ("wall", "event"):
            raise SystemExit(f"AFTERSALE_CLOCK must be 'wall' or 'event', got {settings.clock!r}")
        if settings.rocksdb_memory_mb < 8:
            raise SystemExit(f"AFTERSALE_ROCKSDB_MEMORY_MB must be at least 8, got {settings.rocksdb_memory_mb}")
        if settings.warm_start and not Path(settings.warm_start).is_file():
            raise SystemExit(f"AFTERSALE_WARM_START: no such file {settings.warm_start}")
        settings.load_experiments()  # a bad experiments file stops the start, with what is wrong
        if settings.compression not in COMPRESSIONS:
            raise SystemExit(
                f"AFTERSALE_COMPRESSION must be one of {', '.join(COMPRESSIONS)}, got {settings.compression!r}"
            )
        if settings.fire_limit < 1:
            raise SystemExit(f"AFTERSALE_FIRE_LIMIT must be at least 1, got {settings.fire_limit}")
        bad_security = security_problems(settings)  # fail at start-up, not at the first connection
        if bad_security:
            raise SystemExit("Kafka security settings: " + "; ".join(bad_security))
        return settings

    def load_experiments(self) -> tuple:
        """The experiments of AFTERSALE_EXPERIMENTS (checked), or none."""
        return load_experiments(self.experiments)

    def topic(self, name: str) -> str:
        return f"{self.app_id}.{name}"
