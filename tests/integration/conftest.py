"""Fixtures of the integration tests: a real Kafka broker (KRaft), a real redis-server and
the tidewatch worker as a subprocess. The helpers behind them live in harness.py.

Run: python3 -m pytest -x -q -p no:cacheprovider tests/integration
Env: TIDEWATCH_BIN (the binary; default $TW_SOURCE_DIR/build/tidewatch), TW_SOURCE_DIR,
     TW_TIMEOUT_SCALE (multiplies timeouts; sanitizer builds set 3), TW_KAFKA_LIB (broker
     jars; default tests/integration/.kafka/lib, filled by scripts/fetch-kafka.sh),
     CI=true (a missing prerequisite fails instead of skipping).
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import harness  # noqa: E402
# With CI=true any skip fails, not only the missing prerequisites harness reports.
from pytest_ci import pytest_make_collect_report, pytest_runtest_makereport  # noqa: E402,F401
from harness import (KafkaBroker, RedisServer, missing_prerequisite,  # noqa: E402
                     require_tidewatch, run_worker, stop_worker)


@pytest.fixture(scope="session")
def kafka():
    """A single-node KRaft broker for the whole session: .bootstrap ("127.0.0.1:PORT"),
    .create_topic(), .produce(), .consume_all(), .committed_offsets(), .high_watermarks()."""
    problem = KafkaBroker.prerequisites()
    if problem:
        missing_prerequisite(problem)
    broker = KafkaBroker()
    try:
        broker.start()
    except Exception as exc:  # noqa: BLE001 - show why, with the broker's log tail
        broker.stop()
        pytest.fail(f"could not start the Kafka broker: {exc}", pytrace=False)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def redis():
    """redis-server for the whole session: .url ("redis://127.0.0.1:PORT/0"), .port,
    .url_for(db), .command(...), .flushall(), .dbsize(db)."""
    problem = RedisServer.prerequisites()
    if problem:
        missing_prerequisite(problem)
    server = RedisServer()
    try:
        server.start()
    except Exception as exc:  # noqa: BLE001
        server.stop()
        pytest.fail(f"could not start redis-server: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_clean(redis):
    """The session's redis-server, emptied (FLUSHALL) before the test."""
    redis.flushall()
    return redis


@pytest.fixture(scope="session")
def tidewatch_bin():
    """Path of the tidewatch binary (skips locally / fails in CI when it is missing)."""
    return require_tidewatch()


@pytest.fixture
def workers(tmp_path, tidewatch_bin):
    """Starts workers for one test: workers.start(args, env=None, name="worker") returns a
    harness.WorkerProcess whose stderr goes to a file under tmp_path; workers left running
    at the end of the test are killed (and reported)."""

    class Workers:
        def __init__(self):
            self.started = []

        def start(self, args, env=None, name="worker"):
            w = run_worker(args, env=env, log_dir=tmp_path, name=name)
            self.started.append(w)
            return w

        def stop(self, w, timeout=40.0):
            return stop_worker(w, timeout)

    ws = Workers()
    yield ws
    leftovers = [w for w in ws.started if w.poll() is None]
    for w in leftovers:
        w.kill()
    for w in ws.started:
        w._close()


@pytest.fixture
def scale():
    """TW_TIMEOUT_SCALE as a float (>= 1)."""
    return harness.timeout_scale()
