"""Broker faults through librdkafka's mock cluster (issue 12, campaign item 3;
tests/RELIABILITY.md): the worker (`tidewatch run`, real redis-server) consumes from and
publishes to a mock cluster of 3 brokers (tests/tools/mock_broker.c, driven over its stdin)
while the mock fails Produce, Fetch and OffsetCommit requests, takes brokers down and up,
answers slowly, and rejects commits around a rebalance. The posts, the oracle (`tidewatch
scan` on the same posts) and the independent reader are those of test_faults.py: 0 lost,
0 unexpected, every dead letter and campaign milestone, commits at the end of every
partition, exit 0 on SIGTERM (with the brokers up), and /readyz 503 exactly while the group
coordinator is unreachable (docs/OPERATIONS.md, "Readiness").

No real Kafka broker is needed; the mock is librdkafka's own (the system library the worker
links). Knobs: TW_MOCK_BROKER (the tool; default next to TIDEWATCH_BIN in tests/),
TW_BROKER_FAULTS_RECORDS (posts per test, default 1000), TW_FAULTS_SEED, TW_FAULTS_REPORT.
"""

import os
import select
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from harness import (KafkaBroker, free_port, missing_prerequisite, scaled, tidewatch_binary,
                     unique_name, wait_until)
from test_faults import (PacedProducer, assert_nothing_lost, assigned, check_outputs,
                         expected_outcomes, make_posts, report, topics_for,
                         wait_committed_to_end, worker_args)
from test_ops import http_get

RECORDS = int(os.environ.get("TW_BROKER_FAULTS_RECORDS", "1000"))
SEED = int(os.environ.get("TW_FAULTS_SEED", "12")) + 100
STREAM_S = 5.0  # the posts are produced evenly over this long
BROKERS = 3


def mock_broker_binary() -> Path:
    env = os.environ.get("TW_MOCK_BROKER")
    if env:
        return Path(env)
    return tidewatch_binary().parent / "tests" / "mock_broker"


class MockCluster(KafkaBroker):
    """tests/tools/mock_broker as a KafkaBroker look-alike: the harness's clients (produce,
    consume_all, committed_offsets, high_watermarks) work unchanged; topics are created
    through the tool (the mock has no CreateTopics), and command() drives the faults."""

    def __init__(self, brokers=BROKERS):
        super().__init__()
        self.brokers = brokers
        self.stderr_path = None

    def start(self):
        tool = mock_broker_binary()
        if not (tool.is_file() and os.access(tool, os.X_OK)):
            missing_prerequisite(f"mock_broker not found at {tool} (build the mock_broker "
                                 "target, or set TW_MOCK_BROKER)")
        fd, name = tempfile.mkstemp(prefix="tw-mock-", suffix=".stderr")
        self.stderr_path = Path(name)
        self.proc = subprocess.Popen(
            [str(tool), "--brokers", str(self.brokers), "--max-seconds", "600"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=fd, text=True,
            start_new_session=True)
        os.close(fd)
        self.bootstrap = self._read_line(scaled(20))
        assert self.bootstrap.count(":") == self.brokers, self.bootstrap
        return self

    def _read_line(self, timeout):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            pytest.fail(f"mock_broker did not answer within {timeout:.0f}s (exit code "
                        f"{self.proc.poll()}): {self.stderr_path.read_text()[-2000:]}",
                        pytrace=False)
        return line.strip()

    def command(self, line):
        """Sends one command; fails the test unless the answer is `ok`. Returns the answer."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self._read_line(scaled(10))
        assert answer.startswith("ok"), f"mock_broker `{line}`: {answer}"
        return answer

    def create_topics(self, names, partitions=3):
        for n in names:
            self.command(f"topic {n} {partitions}")
        for n in names:
            wait_until(lambda n=n: self._partitions_ready(n, partitions), scaled(30),
                       f"topic {n} to have {partitions} partitions with leaders")

    def create_topic(self, name, partitions=3, config=None, timeout=30.0):
        self.create_topics([name], partitions)
        return name

    def committed_offsets(self, group, topic):
        """The harness's, with a short timeout: polled while workers come and go, a query the
        mock leaves unanswered must not hold the poll loop for long (it is retried)."""
        from harness import Consumer, TopicPartition  # noqa: PLC0415

        consumer = Consumer(self.client_config(**{"group.id": group,
                                                  "enable.auto.commit": False}))
        try:
            tps = [TopicPartition(topic, p) for p in self.partitions(topic)]
            return {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=3)}
        finally:
            consumer.close()

    def errors_left(self, broker, api):
        return int(self.command(f"errors_left {broker} {api}").split()[1])

    def wait_errors_used(self, api, timeout, proc=None, brokers=None):
        """Waits until the brokers (default: all) have used the errors pushed onto their
        stacks for api."""
        brokers = brokers or range(1, self.brokers + 1)
        wait_until(lambda: all(self.errors_left(b, api) == 0 for b in brokers),
                   scaled(timeout), f"the {api} errors to be used", interval=0.2, proc=proc)

    def stop(self):
        if self.proc is not None:
            try:
                self.proc.stdin.close()  # the tool exits when its stdin closes
                self.proc.wait(timeout=scaled(15))
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=30)
            self.proc.stdout.close()
            self.proc = None
        if self.stderr_path is not None:
            self.stderr_path.unlink(missing_ok=True)
            self.stderr_path = None
        self._admin = None


@pytest.fixture
def mock():
    from harness import confluent_kafka  # noqa: PLC0415 - None when not installed

    if confluent_kafka is None:
        missing_prerequisite("python package confluent-kafka is not installed "
                             "(python3 -m pip install -r tests/integration/requirements.txt)")
    cluster = MockCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


class Scenario:
    """One stream of RECORDS seeded posts through one worker group on the mock: the topics,
    the expected outcome, the worker's arguments (statistics every 0.5 s and an HTTP port
    for /readyz), and the checks every test ends with."""

    def __init__(self, mock, redis, workers, tmp_path, name, seed):
        self.mock, self.workers, self.name, self.seed = mock, workers, name, seed
        self.started = time.monotonic()
        self.posts = make_posts(RECORDS, seed)
        self.expected_alerts, self.expected_dead = expected_outcomes(self.posts, tmp_path)
        self.t = topics_for(mock, name)
        self.group = unique_name(name)
        # Known places: the group's coordinator is broker 1, input partition p is led by
        # broker p + 1 (so every broker serves fetches).
        mock.command(f"coordinator group {self.group} 1")
        for p in range(3):
            mock.command(f"leader {self.t.input} {p} {p + 1}")
        self.port = free_port()
        self.args = worker_args(mock, self.group, self.t, redis.url) + [
            "-X", "kafka.statistics.interval.ms=500"]
        self.producer = None

    def start_worker(self, label=None, http=True):
        args = list(self.args)
        if http:
            args += ["--http", f"127.0.0.1:{self.port}"]
        w = self.workers.start(args, name=label or self.name)
        wait_until(lambda: assigned(w), scaled(60), "the worker to be assigned", proc=w)
        return w

    def ready(self):
        return http_get(self.port, "/readyz")

    def wait_ready(self, want, timeout, what, proc):
        wait_until(lambda: self.ready()[0] == want, scaled(timeout), what, interval=0.1,
                   proc=proc)

    def stream(self, seconds=STREAM_S):
        self.producer = PacedProducer(self.mock, self.t.input, self.posts, seconds=seconds)
        self.producer.start()
        return self.producer

    def finish(self, last_worker, **extra):
        """Waits for the stream and the commits, stops the worker (exit 0), reads the outputs
        back and reports; returns the figures (nothing lost is asserted by the caller)."""
        if self.producer is not None:
            self.producer.join(timeout=scaled(120))
            assert self.producer.done.is_set() and not self.producer.errors, \
                self.producer.errors[:5]
        wait_committed_to_end(self.mock, self.group, self.t.input, timeout=60,
                              proc=last_worker)
        assert last_worker.poll() is None, last_worker.describe()
        assert self.workers.stop(last_worker) == 0, last_worker.describe()
        figures = check_outputs(self.mock, self.t, self.expected_alerts, self.expected_dead)
        figures.update(records=len(self.posts), seed=self.seed, **extra,
                       wall_s=round(time.monotonic() - self.started, 1))
        report(f"mock-{self.name}", figures)
        return figures


def logged(worker, *needles):
    return sum(any(n in r.get("msg", "") for n in needles) for r in worker.log_records())


def test_produce_request_errors(mock, redis_clean, workers, tmp_path):
    """Produce requests fail mid-stream on every broker, the worker's alerts and the posts
    alike, with the errors a producer retries (NOT_LEADER_FOR_PARTITION, REQUEST_TIMED_OUT,
    NOT_ENOUGH_REPLICAS, a dropped connection). Nothing lost, no stop, ready throughout."""
    s = Scenario(mock, redis_clean, workers, tmp_path, "produce", SEED)
    w = s.start_worker()
    s.wait_ready(200, 30, "/readyz 200", w)
    s.stream()
    time.sleep(2.0)
    errors = ("NOT_LEADER_FOR_PARTITION REQUEST_TIMED_OUT NOT_ENOUGH_REPLICAS _TRANSPORT "
              "REQUEST_TIMED_OUT NOT_LEADER_FOR_PARTITION NOT_ENOUGH_REPLICAS_AFTER_APPEND "
              "_TRANSPORT")
    mock.command(f"broker_errors all Produce {errors}")
    mock.wait_errors_used("Produce", 30, proc=w)
    assert s.ready()[0] == 200, s.ready()
    figures = s.finish(w, produce_errors=len(errors.split()) * BROKERS)
    assert_nothing_lost(figures)


def test_fatal_producer_error_stops_promptly(mock, redis_clean, workers, tmp_path):
    """A fatal idempotent-producer error (a Produce answered OUT_OF_ORDER_SEQUENCE_NUMBER)
    while other Produce requests hang on a slow broker: nothing more can be delivered, so
    the worker must stop at once (exit 1; its uncommitted posts are re-read by the next
    worker), not wait out its drain and revoke flushes (12.5 s + 10 s before the fix, its
    partitions held and unprocessed meanwhile). Nothing lost."""
    s = Scenario(mock, redis_clean, workers, tmp_path, "fatal", SEED + 9)
    # The posts go to broker 1 only (the test's producer must not get the error), the
    # worker's records to brokers 2 and 3.
    for p in range(3):
        mock.command(f"leader {s.t.input} {p} 1")
        for topic in (s.t.alerts, s.t.dlq, s.t.campaign):
            mock.command(f"leader {topic} {p} {2 + p % 2}")
    w1 = s.start_worker("w1", http=False)
    s.stream()
    time.sleep(1.5)
    mock.command("rtt 2 20000")  # broker 2's answers now hang
    time.sleep(0.3)
    mock.command("broker_errors 3 Produce OUT_OF_ORDER_SEQUENCE_NUMBER")
    wait_until(lambda: logged(w1, "FATAL"), scaled(30), "a fatal producer error", proc=None)
    fatal = time.monotonic()
    try:
        rc = w1.proc.wait(timeout=scaled(40))
    except subprocess.TimeoutExpired:
        rc = None
    stop_s = round(time.monotonic() - fatal, 1)
    mock.command("rtt 2 0")
    assert rc == 1 and stop_s <= scaled(5.0), (rc, stop_s, w1.describe())
    assert mock.errors_left(3, "Produce") == 0
    w2 = s.start_worker("w2", http=False)
    figures = s.finish(w2, stop_after_fatal_s=stop_s)
    assert_nothing_lost(figures)


def test_fetch_request_errors(mock, redis_clean, workers, tmp_path):
    """Fetch requests fail mid-stream on every broker (NOT_LEADER_FOR_PARTITION,
    UNKNOWN_TOPIC_OR_PART, REQUEST_TIMED_OUT, a dropped connection): the consumer refreshes
    its metadata and fetches again from where it was. Nothing lost, ready throughout."""
    s = Scenario(mock, redis_clean, workers, tmp_path, "fetch", SEED + 1)
    w = s.start_worker()
    s.wait_ready(200, 30, "/readyz 200", w)
    s.stream()
    time.sleep(2.0)
    errors = ("NOT_LEADER_FOR_PARTITION UNKNOWN_TOPIC_OR_PART REQUEST_TIMED_OUT _TRANSPORT "
              "NOT_LEADER_FOR_PARTITION REQUEST_TIMED_OUT")
    mock.command(f"broker_errors all Fetch {errors}")
    mock.wait_errors_used("Fetch", 30, proc=w)
    assert s.ready()[0] == 200, s.ready()
    figures = s.finish(w, fetch_errors=len(errors.split()) * BROKERS)
    assert_nothing_lost(figures)


def test_offset_commit_errors(mock, redis_clean, workers, tmp_path):
    """Every commit fails for a while (COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR,
    REQUEST_TIMED_OUT, COORDINATOR_LOAD_IN_PROGRESS; auto-commit every second): the commits
    resume and reach the end, nothing lost, no duplicate (no one re-read anything)."""
    s = Scenario(mock, redis_clean, workers, tmp_path, "commit", SEED + 2)
    w = s.start_worker()
    s.stream()
    time.sleep(1.0)
    errors = ("COORDINATOR_NOT_AVAILABLE NOT_COORDINATOR REQUEST_TIMED_OUT "
              "COORDINATOR_LOAD_IN_PROGRESS COORDINATOR_NOT_AVAILABLE REQUEST_TIMED_OUT")
    mock.command(f"broker_errors 1 OffsetCommit {errors}")
    mock.wait_errors_used("OffsetCommit", 30, proc=w, brokers=[1])
    figures = s.finish(w, commit_errors=len(errors.split()),
                       commit_failures_logged=logged(w, "commit"))
    assert_nothing_lost(figures)
    assert figures["duplicates"] == 0 and figures["dead_letter_duplicates"] == 0, figures


def test_brokers_down_and_up(mock, redis_clean, workers, tmp_path):
    """Mid-stream: the leader of an input partition (not the coordinator) goes down for 2 s
    (ready stays 200: the coordinator is reachable), then the group coordinator for 2.5 s
    (/readyz 503 while it is down, 200 after), then every broker (503, then 200), /healthz
    200 throughout (live: no restart wanted). Leaders do not move in
    the mock, so each partition waits for its broker. Nothing lost, exit 0."""
    s = Scenario(mock, redis_clean, workers, tmp_path, "down", SEED + 3)
    w = s.start_worker()
    s.wait_ready(200, 30, "/readyz 200", w)
    s.stream(seconds=10.0)
    time.sleep(1.5)

    mock.command("down 2")
    not_ready_leader = 0
    for _ in range(20):
        not_ready_leader += s.ready()[0] != 200
        time.sleep(0.1)
    mock.command("up 2")

    timings = {}
    for what, broker in (("coordinator", "1"), ("all", "all")):
        time.sleep(1.5)
        mock.command(f"down {broker}")
        down = time.monotonic()
        s.wait_ready(503, 15, f"/readyz 503 with {what} down", w)
        timings[f"{what}_503_after_s"] = round(time.monotonic() - down, 1)
        time.sleep(max(0.0, 2.5 - (time.monotonic() - down)))
        assert http_get(s.port, "/healthz")[0] == 200 and w.poll() is None, w.describe()
        mock.command(f"up {broker}")
        back = time.monotonic()
        s.wait_ready(200, 30, f"/readyz 200 once {what} is back", w)
        timings[f"{what}_200_after_s"] = round(time.monotonic() - back, 1)
    figures = s.finish(w, readyz_not_200_with_leader_down=not_ready_leader, **timings)
    assert_nothing_lost(figures)
    assert not_ready_leader == 0, "not ready while only a partition leader was down"


def test_slow_responses(mock, redis_clean, workers, tmp_path):
    """Responses slowed mid-stream: 1000 ms on the coordinator's broker, then 500 ms on
    every broker, 3 s each. Nothing lost, ready throughout (slow is not down)."""
    s = Scenario(mock, redis_clean, workers, tmp_path, "slow", SEED + 4)
    w = s.start_worker()
    s.wait_ready(200, 30, "/readyz 200", w)
    s.stream(seconds=8.0)
    not_ready = 0
    for broker, rtt in (("1", 1000), ("all", 500)):
        time.sleep(1.0)
        mock.command(f"rtt {broker} {rtt}")
        for _ in range(30):
            not_ready += s.ready()[0] != 200
            time.sleep(0.1)
        mock.command(f"rtt {broker} 0")
    figures = s.finish(w, readyz_not_200_samples=not_ready)
    assert_nothing_lost(figures)
    assert not_ready == 0, figures


def test_leaders_and_coordinator_move(mock, redis_clean, workers, tmp_path):
    """Mid-stream, every input partition's leader moves to the next broker, then the group's
    coordinator moves to broker 2, then the alerts topic's leaders move (the old brokers
    answer NOT_LEADER_FOR_PARTITION / NOT_COORDINATOR, the clients look again). Nothing
    lost, ready at the end."""
    s = Scenario(mock, redis_clean, workers, tmp_path, "move", SEED + 7)
    w = s.start_worker()
    s.wait_ready(200, 30, "/readyz 200", w)
    s.stream()
    time.sleep(1.5)
    for p in range(3):
        mock.command(f"leader {s.t.input} {p} {(p + 1) % 3 + 1}")
    time.sleep(1.5)
    mock.command(f"coordinator group {s.group} 2")
    time.sleep(1.5)
    for p in range(3):
        mock.command(f"leader {s.t.alerts} {p} {(p + 2) % 3 + 1}")
    s.wait_ready(200, 30, "/readyz 200 after the moves", w)
    figures = s.finish(w)
    assert_nothing_lost(figures)


def test_sigterm_while_all_brokers_down(mock, redis_clean, workers, tmp_path):
    """SIGTERM mid-stream while every broker is down (a rollout during an outage): /readyz
    503, and the worker is gone within shutdown_timeout_s (6 s here) plus a margin, by a
    clean drain (exit 0) or its watchdog (exit 3), never held until the kubelet's SIGKILL.
    The brokers come back and a new worker of the group re-reads what was not committed:
    nothing lost."""
    s = Scenario(mock, redis_clean, workers, tmp_path, "stopdown", SEED + 8)
    s.args += ["-X", "shutdown_timeout_s=6"]
    w1 = s.start_worker("w1")
    s.stream(seconds=5.0)
    time.sleep(2.0)
    mock.command("down all")
    s.wait_ready(503, 15, "/readyz 503 with every broker down", w1)
    sent = time.monotonic()
    w1.proc.send_signal(signal.SIGTERM)
    rc = w1.proc.wait(timeout=scaled(40))
    exit_s = round(time.monotonic() - sent, 1)
    assert rc in (0, 3) and exit_s <= 6 + scaled(4), (rc, exit_s, w1.describe())
    mock.command("up all")
    w2 = s.start_worker("w2", http=False)
    figures = s.finish(w2, sigterm_exit_code=rc, sigterm_exit_s=exit_s)
    assert_nothing_lost(figures)


def test_rebalance_while_commits_fail(mock, redis_clean, workers, tmp_path):
    """A second worker joins and the first leaves (SIGTERM) while every OffsetCommit fails
    (NOT_COORDINATOR, REQUEST_TIMED_OUT, ...): the commits before the revocation and at the
    drain are lost, so the partitions' next owner re-reads what they covered. Nothing lost;
    duplicates reported, not bounded (the mock also rejects commits while a rebalance is in
    progress, which a real broker accepts)."""
    s = Scenario(mock, redis_clean, workers, tmp_path, "rebal", SEED + 5)
    w1 = s.start_worker("w1", http=False)
    s.stream(seconds=9.0)
    time.sleep(1.5)
    errors = " ".join(["NOT_COORDINATOR", "REQUEST_TIMED_OUT", "COORDINATOR_NOT_AVAILABLE"] * 4)
    mock.command(f"broker_errors 1 OffsetCommit {errors}")
    w2 = workers.start(s.args, name="w2")
    time.sleep(4.0)
    assert workers.stop(w1) == 0, w1.describe()
    wait_until(lambda: assigned(w2), scaled(60), "w2 to be assigned", proc=w2)
    figures = s.finish(w2, commit_errors=len(errors.split()),
                       commit_failures_logged=logged(w1, "commit") + logged(w2, "commit"))
    assert_nothing_lost(figures)


def test_mock_broker_tool_rejects_bad_commands(mock):
    """The tool answers every command, a bad one with `error: ...` (not a hang)."""
    for bad in ("bogus", "errors Produce NO_SUCH_ERROR", "down 9", "topic x 0", "rtt all -5",
                "broker_errors 1 NoSuchApi NOT_COORDINATOR", ""):
        mock.proc.stdin.write(bad + "\n")
        mock.proc.stdin.flush()
        assert mock._read_line(10).startswith("error: "), bad
    assert mock.command("ping") == "ok"
    mock.command("rtt 2 0")
    assert mock.errors_left(3, "Produce") == 0
    mock.command("quit")
    assert mock.proc.wait(timeout=10) == 0
