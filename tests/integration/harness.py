"""Helpers of the integration tests: a real Kafka broker (KRaft, single node), a real
redis-server, and the tidewatch worker as a subprocess.

conftest.py turns these into pytest fixtures; tests import the plain helpers from here
(`from harness import unique_name, run_worker, stop_worker, ...`).

Everything binds 127.0.0.1 on ports chosen at run time, lives in temporary directories,
waits for readiness by polling (never a bare sleep) and is torn down at the end.
Timeouts are multiplied by TW_TIMEOUT_SCALE (default 1; sanitizer builds set 3).
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import pytest

try:  # confluent-kafka is installed by scripts/install-deps.sh (tests/integration/requirements.txt)
    import confluent_kafka
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError:  # reported by the fixtures (skip locally, fail in CI)
    confluent_kafka = None

HERE = Path(__file__).resolve().parent
SOURCE_DIR = Path(os.environ.get("TW_SOURCE_DIR") or HERE.parent.parent).resolve()
KAFKA_LIB = Path(os.environ.get("TW_KAFKA_LIB") or HERE / ".kafka" / "lib")
LOG4J_PROPERTIES = HERE / "kafka" / "log4j.properties"
FIXTURES = SOURCE_DIR / "tests" / "fixtures" / "integration"

log = logging.getLogger("tidewatch.tests")


# ---------------------------------------------------------------------------------------
# generic helpers


def timeout_scale() -> float:
    try:
        scale = float(os.environ.get("TW_TIMEOUT_SCALE", "1") or 1)
    except ValueError:
        scale = 1.0
    return max(scale, 1.0)


def scaled(seconds: float) -> float:
    """A timeout in seconds, scaled for slow (sanitizer) builds."""
    return seconds * timeout_scale()


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on")


def missing_prerequisite(message: str):
    """Skips the test locally; fails it in CI (CI=true), where a skipped integration suite
    would hide a broken install."""
    if in_ci():
        pytest.fail(f"integration prerequisite missing (CI=true): {message}", pytrace=False)
    pytest.skip(message)


_names = itertools.count(1)


def unique_name(prefix: str = "tw") -> str:
    """A name no other test (or earlier run against the same broker) uses: topics, groups."""
    return f"{prefix}-{os.getpid()}-{next(_names)}-{uuid.uuid4().hex[:8]}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], object], timeout: float, what,
               interval: float = 0.1, proc: Optional["WorkerProcess"] = None):
    """Polls predicate until it returns a true value (returned) or timeout (already scaled
    by the caller) expires (test fails). what: text for the failure, or a callable giving it.
    When proc (a worker) exits meanwhile, fails at once with its stderr."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last one
            last_exc = exc
        if proc is not None and proc.poll() is not None:
            what = what() if callable(what) else what
            pytest.fail(f"worker exited with {proc.returncode} while waiting for {what}\n"
                        f"{proc.describe()}", pytrace=False)
        if time.monotonic() >= deadline:
            what = what() if callable(what) else what
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            extra = f"\n{proc.describe()}" if proc is not None else ""
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}{detail}{extra}",
                        pytrace=False)
        time.sleep(interval)


def tail(path: Path, lines: int = 40) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    text = data.decode("utf-8", "replace").splitlines()
    return "\n".join(text[-lines:])


def _terminate(proc: subprocess.Popen, grace: float) -> Optional[int]:
    """SIGTERM, then SIGKILL after grace seconds. Returns the exit code."""
    if proc.poll() is not None:
        return proc.returncode
    try:
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=30)
    except ProcessLookupError:
        return proc.wait()


# ---------------------------------------------------------------------------------------
# Kafka


def _rdkafka_logger() -> logging.Logger:
    # librdkafka logs of the test clients go through Python logging (shown by pytest on
    # failure) instead of straight to fd 2.
    return logging.getLogger("tidewatch.tests.rdkafka")


@dataclasses.dataclass
class Record:
    """One message read back from a topic."""

    topic: str
    partition: int
    offset: int
    key: Optional[bytes]
    value: Optional[bytes]
    headers: dict  # name -> bytes (last value wins); header_list keeps them all
    header_list: list
    timestamp: int

    def json(self):
        return json.loads(self.value)

    def header(self, name: str) -> Optional[str]:
        v = self.headers.get(name)
        return None if v is None else v.decode("utf-8", "replace")


class KafkaBroker:
    """A single-node KRaft broker started as `java -cp lib/* kafka.Kafka` on free loopback
    ports. Use through the session fixture `kafka`."""

    def __init__(self, lib: Path = KAFKA_LIB):
        self.lib = Path(lib)
        self.dir: Optional[Path] = None
        self.proc: Optional[subprocess.Popen] = None
        self.port = 0
        self.controller_port = 0
        self.bootstrap = ""
        self._admin = None

    # -- lifecycle ------------------------------------------------------------------

    @staticmethod
    def prerequisites() -> Optional[str]:
        if confluent_kafka is None:
            return ("python package confluent-kafka is not installed "
                    "(python3 -m pip install -r tests/integration/requirements.txt)")
        if not java_binary():
            return "java not found (scripts/install-deps.sh installs a JRE)"
        if not (KAFKA_LIB.is_dir() and any(KAFKA_LIB.glob("kafka_2.13-*.jar"))):
            return f"Kafka broker jars not found in {KAFKA_LIB} (run scripts/fetch-kafka.sh)"
        return None

    def start(self, attempts: int = 3):
        last = None
        for _ in range(attempts):
            try:
                self._start_once()
                return self
            except _PortInUse as exc:  # a free port was taken between probe and bind
                last = exc
                self.stop()
        raise RuntimeError(f"Kafka broker could not bind its ports: {last}")

    def _start_once(self):
        self.dir = Path(tempfile.mkdtemp(prefix="tw-kafka-"))
        self.port, self.controller_port = free_port(), free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
                         f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "log.dirs": str(self.dir / "data"),
            "num.partitions": "3",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "3",
            "group.initial.rebalance.delay.ms": "0",
            # the fault campaign's workers use 2 s sessions, so that a restarted worker is
            # assigned about 2 s after a SIGKILL (the broker's default minimum is 6 s)
            "group.min.session.timeout.ms": "1000",
            # room for the oversize-post test (a 2 MB post must reach the worker)
            "message.max.bytes": "3000000",
            "replica.fetch.max.bytes": "3000000",
            # a small machine: few threads
            "num.network.threads": "2",
            "num.io.threads": "4",
            "background.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
            "log.cleaner.threads": "1",
            "log.cleaner.dedupe.buffer.size": "8388608",
            "delete.topic.enable": "true",
        }
        conf = self.dir / "server.properties"
        conf.write_text("".join(f"{k}={v}\n" for k, v in props.items()))

        java = java_binary()
        base = [java, "-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-Djava.awt.headless=true",
                f"-Dlog4j.configuration=file:{LOG4J_PROPERTIES}",
                f"-Dkafka.logs.dir={self.dir}", "-cp", f"{self.lib}/*"]
        fmt = subprocess.run(
            base + ["kafka.tools.StorageTool", "format", "-t", random_cluster_id(),
                    "-c", str(conf)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=scaled(120))
        if fmt.returncode != 0:
            raise RuntimeError("kafka-storage format failed:\n"
                               + fmt.stdout.decode("utf-8", "replace")[-4000:])

        self._stdout = open(self.dir / "stdout.log", "wb")
        self.proc = subprocess.Popen(base + ["kafka.Kafka", str(conf)],
                                     stdout=self._stdout, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self._wait_ready(scaled(90))

    def _wait_ready(self, timeout: float):
        deadline = time.monotonic() + timeout
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "logger": _rdkafka_logger(),
                             "log_level": 0, "socket.connection.setup.timeout.ms": 2000})
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                md = admin.list_topics(timeout=2)
                if md.brokers and md.controller_id is not None and md.controller_id >= 0:
                    self._admin = admin
                    # The controller must be able to create topics too, not only to answer.
                    self.create_topic(unique_name("tw-ready"), 1, timeout=min(
                        30.0, max(1.0, deadline - time.monotonic())))
                    return
            except Exception as exc:  # noqa: BLE001 - broker not up yet
                last = exc
            time.sleep(0.25)
        log_text = tail(self.dir / "server.log", 60) + "\n" + tail(self.dir / "stdout.log", 30)
        if "Address already in use" in log_text:
            raise _PortInUse(log_text[-500:])
        rc = self.proc.poll()
        raise RuntimeError(
            f"Kafka broker not ready after {timeout:.0f}s (exit code {rc}, last error {last!r})"
            f"\n--- server.log / stdout tail ---\n{log_text}")

    def stop(self):
        if self.proc is not None:
            rc = _terminate(self.proc, scaled(30))
            self.proc = None
            self._stdout.close()
            del rc
        self._admin = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    # -- clients --------------------------------------------------------------------

    def admin(self) -> "AdminClient":
        if self._admin is None:
            self._admin = AdminClient({"bootstrap.servers": self.bootstrap,
                                       "logger": _rdkafka_logger()})
        return self._admin

    def client_config(self, **extra) -> dict:
        conf = {"bootstrap.servers": self.bootstrap, "logger": _rdkafka_logger()}
        conf.update(extra)
        return conf

    def create_topic(self, name: str, partitions: int = 3, config: Optional[dict] = None,
                     timeout: float = 30.0) -> str:
        futures = self.admin().create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1,
                      config=config or {})], operation_timeout=scaled(timeout))
        futures[name].result(timeout=scaled(timeout))
        # Wait until the broker serves metadata of every partition (leaders elected).
        wait_until(lambda: self._partitions_ready(name, partitions), scaled(timeout),
                   f"topic {name} to have {partitions} partitions with leaders")
        return name

    def create_topics(self, names: Iterable[str], partitions: int = 3) -> None:
        names = list(names)
        futures = self.admin().create_topics(
            [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names],
            operation_timeout=scaled(30))
        for n in names:
            futures[n].result(timeout=scaled(30))
        for n in names:
            wait_until(lambda n=n: self._partitions_ready(n, partitions), scaled(30),
                       f"topic {n} to have {partitions} partitions with leaders")

    def _partitions_ready(self, topic: str, partitions: int) -> bool:
        md = self.admin().list_topics(topic=topic, timeout=5)
        t = md.topics.get(topic)
        if t is None or t.error is not None or len(t.partitions) != partitions:
            return False
        return all(p.leader >= 0 and p.error is None for p in t.partitions.values())

    def partitions(self, topic: str) -> list:
        md = self.admin().list_topics(topic=topic, timeout=scaled(10))
        t = md.topics[topic]
        if t.error is not None:
            raise KafkaException(t.error)
        return sorted(t.partitions)

    def produce(self, topic: str, messages: Sequence, headers=None, timeout: float = 30.0,
                **producer_conf) -> list:
        """Produces messages, each (key, value) or (key, value, partition), key/value str or
        bytes (None allowed). Waits for every delivery report; returns [(partition, offset)]
        in input order. Messages with the same key or partition keep their order."""
        conf = self.client_config(**{"acks": "all", "enable.idempotence": True,
                                     "linger.ms": 5, "message.max.bytes": 4000000,
                                     **producer_conf})
        producer = Producer(conf)
        results: list = [None] * len(messages)
        errors = []

        def on_delivery(i):
            def cb(err, msg):
                if err is not None:
                    errors.append((i, err))
                else:
                    results[i] = (msg.partition(), msg.offset())
            return cb

        for i, m in enumerate(messages):
            key, value = m[0], m[1]
            kwargs = {"key": key, "value": value, "on_delivery": on_delivery(i)}
            if len(m) > 2 and m[2] is not None:
                kwargs["partition"] = m[2]
            if headers:
                kwargs["headers"] = headers
            while True:
                try:
                    producer.produce(topic, **kwargs)
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
        remaining = producer.flush(scaled(timeout))
        if remaining or errors:
            pytest.fail(f"produce to {topic}: {remaining} not delivered, errors {errors[:5]}",
                        pytrace=False)
        return results

    def high_watermarks(self, topic: str) -> dict:
        """{partition: high watermark} (the offset the next message will get)."""
        consumer = Consumer(self.client_config(**{"group.id": unique_name("tw-hw"),
                                                  "enable.auto.commit": False}))
        try:
            out = {}
            for p in self.partitions(topic):
                _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p),
                                                            timeout=scaled(10))
                out[p] = high
            return out
        finally:
            consumer.close()

    def message_count(self, topic: str) -> int:
        return sum(self.high_watermarks(topic).values())

    def committed_offsets(self, group: str, topic: str) -> dict:
        """{partition: committed offset} of group (-1001 = none committed)."""
        consumer = Consumer(self.client_config(**{"group.id": group,
                                                  "enable.auto.commit": False}))
        try:
            tps = [TopicPartition(topic, p) for p in self.partitions(topic)]
            committed = consumer.committed(tps, timeout=scaled(15))
            return {tp.partition: tp.offset for tp in committed}
        finally:
            consumer.close()

    def consume_all(self, topic: str, expected_count: Optional[int] = None,
                    timeout: float = 30.0) -> list:
        """Reads topic from the beginning with a fresh consumer group.

        expected_count=None: reads up to the high watermarks taken at the call.
        Otherwise waits (up to timeout, scaled) until at least expected_count messages
        arrived, then reads on up to the high watermarks of that moment, so extra messages
        already written are returned too (tests assert exact counts). Fails the test when
        fewer than expected_count arrive in time."""
        timeout = scaled(timeout)
        deadline = time.monotonic() + timeout
        consumer = Consumer(self.client_config(**{
            "group.id": unique_name("tw-reader"), "auto.offset.reset": "earliest",
            "enable.auto.commit": False, "enable.partition.eof": False,
            "fetch.message.max.bytes": 4000000}))
        records: list = []
        position: dict = {}
        try:
            parts = self.partitions(topic)
            consumer.assign([TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
                             for p in parts])
            target = None if expected_count is not None else self.high_watermarks(topic)
            while True:
                if target is None and len(records) >= expected_count:
                    target = self.high_watermarks(topic)
                if target is not None and all(position.get(p, 0) >= hw
                                              for p, hw in target.items()):
                    break
                if time.monotonic() >= deadline:
                    want = (f"{expected_count}" if expected_count is not None
                            else f"up to high watermarks {target}")
                    pytest.fail(f"consume_all({topic}): got {len(records)} messages, "
                                f"wanted {want}, within {timeout:.0f}s", pytrace=False)
                msg = consumer.poll(0.2)
                if msg is None:
                    continue
                if msg.error():
                    if msg.error().code() == confluent_kafka.KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(msg.error())
                hl = list(msg.headers() or [])
                records.append(Record(topic=msg.topic(), partition=msg.partition(),
                                      offset=msg.offset(), key=msg.key(), value=msg.value(),
                                      headers={k: v for k, v in hl}, header_list=hl,
                                      timestamp=msg.timestamp()[1]))
                position[msg.partition()] = msg.offset() + 1
            return records
        finally:
            consumer.close()

    def wait_for_messages(self, topic: str, count: int, timeout: float = 60.0,
                          proc: Optional["WorkerProcess"] = None) -> int:
        """Waits until topic holds at least count messages (sum of high watermarks)."""
        state = {"n": 0}

        def enough():
            state["n"] = self.message_count(topic)
            return state["n"] >= count

        wait_until(enough, scaled(timeout),
                   lambda: f"{count} messages in {topic} (have {state['n']})",
                   interval=0.25, proc=proc)
        return state["n"]


class _PortInUse(RuntimeError):
    pass


def java_binary() -> Optional[str]:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def random_cluster_id() -> str:
    """A Kafka cluster id: a random UUID as 22 chars of unpadded base64url (not starting with
    '-', like Kafka's Uuid.randomUuid())."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


# ---------------------------------------------------------------------------------------
# Redis


class RedisError(Exception):
    pass


class RedisClient:
    """A minimal RESP client (enough for tests: PING, FLUSHALL, DBSIZE, KEYS, ...)."""

    def __init__(self, host: str, port: int, db: int = 0, timeout: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        if db:
            self.command("SELECT", db)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def command(self, *args):
        out = [f"*{len(args)}\r\n".encode()]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            out.append(f"${len(b)}\r\n".encode() + b + b"\r\n")
        self.sock.sendall(b"".join(out))
        return self._reply()

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RedisError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RedisError("connection closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RedisError(f"unexpected reply {line!r}")


class RedisServer:
    """redis-server on a free loopback port, no persistence. Use through the session fixture
    `redis` (or `redis_clean`, which FLUSHALLs first)."""

    host = "127.0.0.1"

    def __init__(self):
        self.port = 0
        self.dir: Optional[Path] = None
        self.proc: Optional[subprocess.Popen] = None

    @staticmethod
    def prerequisites() -> Optional[str]:
        if not shutil.which("redis-server"):
            return "redis-server not found (scripts/install-deps.sh installs it)"
        return None

    @property
    def url(self) -> str:
        return self.url_for(0)

    def url_for(self, db: int) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    def start(self, attempts: int = 3):
        for _ in range(attempts):
            self.dir = Path(tempfile.mkdtemp(prefix="tw-redis-"))
            self.port = free_port()
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", self.host,
                 "--save", "", "--appendonly", "no", "--dir", str(self.dir),
                 "--daemonize", "no", "--protected-mode", "yes",
                 "--logfile", str(self.dir / "redis.log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
            deadline = time.monotonic() + scaled(20)
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with self.client() as c:
                        if c.command("PING") == "PONG":
                            return self
                except (OSError, RedisError):
                    time.sleep(0.05)
            log_text = tail(self.dir / "redis.log", 30)
            self.stop()
            if "Address already in use" not in log_text:
                raise RuntimeError(f"redis-server did not answer PING:\n{log_text}")
        raise RuntimeError("redis-server could not bind a free port")

    def stop(self):
        if self.proc is not None:
            _terminate(self.proc, scaled(10))
            self.proc = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def client(self, db: int = 0) -> RedisClient:
        return RedisClient(self.host, self.port, db)

    def command(self, *args, db: int = 0):
        with self.client(db) as c:
            return c.command(*args)

    def flushall(self):
        self.command("FLUSHALL")

    def dbsize(self, db: int = 0) -> int:
        return self.command("DBSIZE", db=db)


# ---------------------------------------------------------------------------------------
# the worker


def tidewatch_binary() -> Optional[Path]:
    """TIDEWATCH_BIN, else TW_SOURCE_DIR/build/tidewatch (the source dir defaults to this
    checkout)."""
    env = os.environ.get("TIDEWATCH_BIN")
    if env:
        return Path(env)
    return SOURCE_DIR / "build" / "tidewatch"


def require_tidewatch() -> Path:
    path = tidewatch_binary()
    if not (path.is_file() and os.access(path, os.X_OK)):
        missing_prerequisite(f"tidewatch binary not found at {path} "
                             "(build it, or set TIDEWATCH_BIN)")
    return path


def worker_env(env: Optional[dict] = None) -> dict:
    """The environment of a worker: ours without TIDEWATCH_* (those override config keys),
    plus env."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("TIDEWATCH_")}
    out.update(env or {})
    return out


_log_dir_default: list = []


def _default_log_dir() -> Path:
    if not _log_dir_default:
        _log_dir_default.append(Path(tempfile.mkdtemp(prefix="tw-worker-logs-")))
    return _log_dir_default[0]


class WorkerProcess:
    """A running `tidewatch ...` with stdout and stderr going to files."""

    def __init__(self, args: Sequence[str], env: Optional[dict] = None,
                 log_dir: Optional[Path] = None, name: str = "worker"):
        self.args = [str(require_tidewatch())] + [str(a) for a in args]
        log_dir = Path(log_dir or _default_log_dir())
        log_dir.mkdir(parents=True, exist_ok=True)
        stem = f"{name}-{next(_names)}"
        self.stderr_path = log_dir / f"{stem}.stderr"
        self.stdout_path = log_dir / f"{stem}.stdout"
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(self.args, stdout=self._out, stderr=self._err,
                                     stdin=subprocess.DEVNULL, env=worker_env(env),
                                     start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self):
        return self.proc.returncode

    def poll(self):
        return self.proc.poll()

    def stderr_text(self) -> str:
        if not self._err.closed:
            self._err.flush()
        return self.stderr_path.read_bytes().decode("utf-8", "replace")

    def stdout_text(self) -> str:
        if not self._out.closed:
            self._out.flush()
        return self.stdout_path.read_bytes().decode("utf-8", "replace")

    def log_records(self) -> list:
        """stderr lines that are JSON objects (the worker's structured logs)."""
        out = []
        for line in self.stderr_text().splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out

    def describe(self, lines: int = 40) -> str:
        return (f"command: {' '.join(self.args)}\nexit code: {self.proc.returncode}\n"
                f"--- stderr tail ({self.stderr_path}) ---\n{tail(self.stderr_path, lines)}")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self._close()

    def _close(self):
        for f in (self._err, self._out):
            try:
                f.close()
            except OSError:
                pass


def run_worker(args: Sequence[str], env: Optional[dict] = None,
               log_dir: Optional[Path] = None, name: str = "worker") -> WorkerProcess:
    """Starts `tidewatch <args>` (TIDEWATCH_BIN) in the background; stderr goes to a file."""
    return WorkerProcess(args, env=env, log_dir=log_dir, name=name)


def stop_worker(worker: WorkerProcess, timeout: float = 40.0) -> int:
    """SIGTERM, then waits up to timeout (scaled) for the exit; returns the exit code.
    Fails the test (after SIGKILL) when the worker does not exit in time, with its stderr."""
    if worker.poll() is None:
        worker.proc.send_signal(signal.SIGTERM)
        try:
            worker.proc.wait(timeout=scaled(timeout))
        except subprocess.TimeoutExpired:
            worker.kill()
            pytest.fail(f"worker did not exit within {scaled(timeout):.0f}s of SIGTERM\n"
                        f"{worker.describe()}", pytrace=False)
    worker._close()
    return worker.proc.returncode


def run_tidewatch(args: Sequence[str], input: Optional[bytes] = None, timeout: float = 60.0,
                  env: Optional[dict] = None) -> subprocess.CompletedProcess:
    """Runs a one-shot `tidewatch <args>` (scan, rules check, --version) to completion;
    stdout and stderr are bytes."""
    cmd = [str(require_tidewatch())] + [str(a) for a in args]
    try:
        return subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=worker_env(env), timeout=scaled(timeout),
                              stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`{' '.join(cmd)}` did not finish within {scaled(timeout):.0f}s\n"
                    f"stderr tail: {(exc.stderr or b'')[-2000:]!r}", pytrace=False)
