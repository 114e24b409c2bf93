"""Operations: /metrics, /healthz and /readyz of a running worker against a real broker and a
real redis-server (issue #5).

- test_metrics_*: one worker (module fixture) consumes a known set of posts; its /metrics
  must pass `promtool check metrics` and every family must count exactly what was sent.
- test_readiness_through_broker_outage: a private broker (not the shared session one) is
  killed and restarted on the same ports; /readyz follows it, /healthz never fails.
- test_readiness_through_redis_outage_*: a private redis-server is killed and restarted;
  fail-open keeps the worker ready, pause makes it unready until Redis answers.

Readiness semantics are documented in docs/OPERATIONS.md.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import string
import subprocess
import time
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest

from harness import (FIXTURES, KAFKA_LIB, LOG4J_PROPERTIES, KafkaBroker, RedisServer,
                     free_port, java_binary, missing_prerequisite, require_tidewatch,
                     run_worker, scaled, stop_worker, tail, unique_name, wait_until)

RULES_FILE = FIXTURES / "rules.yaml"
RULE_IDS = ["scam.giveaway", "phishing.credentials", "spam.promo", "profanity.mild",
            "malware.link"]
STATS_MS = 500  # librdkafka statistics interval for these tests (default 5000)


# ---------------------------------------------------------------------------------------
# helpers


def http_get(port: int, path: str):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_exposition(text: str) -> dict:
    """{(name, frozenset(labels.items())): value} of a Prometheus text exposition, plus
    {"#TYPE", name}: type entries."""
    out = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            out[("#TYPE", name)] = kind
            continue
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"unparseable exposition line: {line!r}"
        labels = frozenset(_LABEL.findall(m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def value(samples: dict, name: str, **labels) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, (f"no sample {name}{labels}; have: "
                            + ", ".join(sorted(f"{n}{dict(l)}" for n, l in samples
                                               if n == name)))
    return samples[key]


def series(samples: dict, name: str) -> dict:
    """{frozenset(labels): value} of every sample of name."""
    return {labels: v for (n, labels), v in samples.items() if n == name}


def metric_value(port: int, name: str, **labels):
    status, body = http_get(port, "/metrics")
    if status != 200:
        return None
    return parse_exposition(body).get((name, frozenset(labels.items())))


def worker_args(bootstrap, group, topics, redis_url=None, http_port=None, extra=()):
    args = ["run", "--brokers", bootstrap, "--group", group, "--input-topic", topics.input,
            "--output-topic", topics.alerts, "--dlq-topic", topics.dlq,
            "--rules", str(RULES_FILE), "-X", f"kafka.statistics.interval.ms={STATS_MS}",
            "-X", "batch_timeout_ms=50"]
    if redis_url:
        args += ["--redis", redis_url]
    if http_port:
        args += ["--http", f"127.0.0.1:{http_port}"]
    return args + list(extra)


def new_topics(kafka, prefix: str, partitions: int = 3) -> SimpleNamespace:
    t = SimpleNamespace(input=unique_name(f"{prefix}-posts"),
                        alerts=unique_name(f"{prefix}-alerts"),
                        dlq=unique_name(f"{prefix}-dlq"))
    kafka.create_topics([t.input, t.alerts, t.dlq], partitions=partitions)
    return t


# ---------------------------------------------------------------------------------------
# metrics of a known workload

NOW = int(time.time())

# (id, raw value, partition); the expectations below are derived by hand from RULES_FILE.
POSTS = [
    ("m1", {"id": "m1", "text": "free giveaway today only", "ts": NOW - 5}, 0),
    ("m2", {"id": "m2", "text": "please verify your account right now", "ts": NOW - 5}, 1),
    ("m3", {"id": "m3", "text": "click here for a limited offer"}, 2),
    ("m4", {"id": "m4", "text": "frak, a free giveaway again", "ts": NOW - 5}, 0),
    ("m5", {"id": "m5", "text": "a quiet afternoon walking the dog by the river"}, 1),
    ("m6", {"id": "m6", "text": "smeg smeg what a day it has been for everyone"}, 2),
    ("m7", {"id": "m7", "text": "what a lovely morning for a long bicycle ride"}, 0),
    ("m8", {"id": "m8", "text": "what a lovely morning for a long bicycle ride"}, 1),
]
BAD = [  # (key, raw bytes, partition, reason)
    ("b1", b"{not json", 0, "invalid_json"),
    ("b2", json.dumps({"id": "b2"}).encode(), 1, "missing_text"),
    ("b3", b"[1, 2, 3]", 2, "not_object"),
    ("b4", json.dumps({"text": "no id here"}).encode(), 0, "missing_id"),
]
EXPECTED_HITS = {"scam.giveaway": 2, "phishing.credentials": 1, "spam.promo": 1,
                 "profanity.mild": 2, "malware.link": 0}
# alert -> category and severity of its most severe match
EXPECTED_ALERTS = {("scam", "high"): 2,  # m1, m4 (scam high beats profanity medium)
                   ("phishing", "critical"): 1, ("spam", "low"): 1, ("profanity", "medium"): 1}
NALERTS = sum(EXPECTED_ALERTS.values())


@pytest.fixture(scope="module")
def scraped(kafka, redis, tmp_path_factory):
    """One worker over POSTS + BAD with Redis; yields the /metrics samples once everything
    is processed and committed (lag 0 on every partition)."""
    require_tidewatch()
    topics = new_topics(kafka, "ops")
    port = free_port()
    redis.command("FLUSHDB", db=5)
    log_dir = tmp_path_factory.mktemp("ops-metrics")
    w = run_worker(worker_args(kafka.bootstrap, unique_name("ops-g"), topics,
                               redis_url=redis.url_for(5), http_port=port),
                   log_dir=log_dir, name="ops-metrics")
    try:
        kafka.produce(topics.input, [(k, json.dumps(v), p) for k, v, p in POSTS]
                      + [(k, raw, p) for k, raw, p, _ in BAD])
        kafka.wait_for_messages(topics.alerts, NALERTS, timeout=60, proc=w)
        kafka.wait_for_messages(topics.dlq, len(BAD), timeout=60, proc=w)

        def settled():
            status, body = http_get(port, "/metrics")
            if status != 200:
                return None
            s = parse_exposition(body)
            lags = series(s, "tidewatch_consumer_lag_messages")
            if len(lags) != 3 or any(v != 0 for v in lags.values()):
                return None
            return body

        t0 = time.monotonic()
        body = wait_until(settled, scaled(30), "consumer lag 0 on all 3 partitions", proc=w)
        timings = []
        for _ in range(20):
            t = time.perf_counter()
            http_get(port, "/metrics")
            timings.append(time.perf_counter() - t)
        ready = http_get(port, "/readyz")
        yield SimpleNamespace(body=body, samples=parse_exposition(body), topics=topics,
                              port=port, worker=w, ready=ready,
                              scrape_ms=sorted(timings)[len(timings) // 2] * 1e3,
                              settle_s=time.monotonic() - t0)
    finally:
        if w.poll() is None:
            stop_worker(w)


def test_metrics_pass_promtool(scraped, tmp_path):
    promtool = shutil.which("promtool")
    if not promtool:
        missing_prerequisite("promtool not found (Debian package prometheus; "
                             "scripts/install-deps.sh installs it)")
    res = subprocess.run([promtool, "check", "metrics"], input=scraped.body.encode(),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    assert res.returncode == 0, res.stdout.decode("utf-8", "replace")
    # lint findings are printed even with exit 0: the exposition must have none
    assert not res.stdout.strip(), res.stdout.decode("utf-8", "replace")


def test_metrics_count_what_was_sent(scraped):
    s = scraped.samples
    total = len(POSTS) + len(BAD)
    assert value(s, "tidewatch_consume_posts_total") == total
    sent_bytes = sum(len(json.dumps(v).encode()) for _, v, _ in POSTS) + sum(
        len(raw) for _, raw, _, _ in BAD)
    assert value(s, "tidewatch_consume_bytes_total") == sent_bytes
    for _, _, _, reason in BAD:
        assert value(s, "tidewatch_decode_failures_total", reason=reason) == 1, reason
    assert sum(series(s, "tidewatch_decode_failures_total").values()) == len(BAD)
    assert value(s, "tidewatch_dlq_records_total") == len(BAD)
    for rule in RULE_IDS:
        assert value(s, "tidewatch_rule_hits_total", rule=rule, mode="live") == \
            EXPECTED_HITS[rule], rule
    assert ("tidewatch_rule_hits_total",
            frozenset({("rule", "_other"), ("mode", "live")})) not in s
    # no shadow rule in this set: no shadow series at all
    assert not [l for l in series(s, "tidewatch_rule_hits_total") if ("mode", "shadow") in l]
    alerts = {(dict(l)["category"], dict(l)["severity"]): v
              for l, v in series(s, "tidewatch_alerts_total").items() if v}
    assert alerts == EXPECTED_ALERTS
    assert value(s, "tidewatch_produce_errors_total") == 0
    # m8 repeats m7 (Redis store): one duplicate, every round trip succeeded
    assert value(s, "tidewatch_dedup_duplicates_total") == 1
    assert value(s, "tidewatch_redis_up") == 1
    assert value(s, "tidewatch_redis_errors_total") == 0
    assert value(s, "tidewatch_redis_roundtrip_seconds_count") >= 1
    # histograms: batch sizes add up to the posts, delays only for alerts of posts with a ts
    assert value(s, "tidewatch_pipeline_batch_posts_sum") == total
    assert value(s, "tidewatch_pipeline_batch_posts_count") == value(
        s, "tidewatch_pipeline_scan_seconds_count")
    assert value(s, "tidewatch_alert_delay_seconds_count") == 3  # m1, m2, m4
    assert value(s, "tidewatch_alert_delay_seconds_bucket", le="+Inf") == 3
    assert value(s, "tidewatch_alert_delay_seconds_bucket", le="2") == 0  # sent 5 s ago
    assert value(s, "tidewatch_alert_delay_seconds_sum") >= 15


def test_metrics_gauges_and_info(scraped):
    s = scraped.samples
    assert value(s, "tidewatch_rules_loaded_rules") == len(RULE_IDS)
    assert value(s, "tidewatch_rules_loaded_patterns") >= 9
    assert value(s, "tidewatch_rules_compile_seconds") > 0
    [info] = series(s, "tidewatch_rules_info")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", dict(info)["version"]), info
    [build] = series(s, "tidewatch_build_info")
    assert dict(build)["version"] and dict(build)["librdkafka"], build
    assert value(s, "tidewatch_consumer_assigned_partitions") == 3
    lags = series(s, "tidewatch_consumer_lag_messages")
    assert {dict(l)["partition"] for l in lags} == {"0", "1", "2"}
    assert {dict(l)["topic"] for l in lags} == {scraped.topics.input}
    assert value(s, "tidewatch_kafka_coordinator_up") == 1
    assert value(s, "tidewatch_kafka_brokers_up") >= 1
    assert abs(value(s, "tidewatch_loop_heartbeat_timestamp_seconds") - time.time()) < 60
    assert value(s, "process_resident_memory_bytes") > 1e6
    assert value(s, "process_open_fds") > 3
    assert value(s, "process_start_time_seconds") <= time.time()
    for name, kind in [("tidewatch_consume_posts_total", "counter"),
                       ("tidewatch_rule_hits_total", "counter"),
                       ("tidewatch_pipeline_scan_seconds", "histogram"),
                       ("tidewatch_redis_roundtrip_seconds", "histogram"),
                       ("tidewatch_consumer_lag_messages", "gauge")]:
        assert s[("#TYPE", name)] == kind, name
    status, body = scraped.ready
    assert status == 200, body
    assert "rules: ok sha256:" in body and "kafka: ok" in body and "redis: ok" in body, body
    print(f"/metrics: {len(scraped.body)} bytes, median scrape {scraped.scrape_ms:.2f} ms, "
          f"lag settled {scraped.settle_s:.1f} s after the last alert")


# ---------------------------------------------------------------------------------------
# readiness through outages


class RestartableBroker(KafkaBroker):
    """A private single-node broker that can be killed and started again on the same ports
    and data directory (the shared session broker must never be stopped)."""

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=scaled(30))
        self._stdout.close()
        self._admin = None

    def restart(self):
        java = java_binary()
        base = [java, "-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-Djava.awt.headless=true",
                f"-Dlog4j.configuration=file:{LOG4J_PROPERTIES}",
                f"-Dkafka.logs.dir={self.dir}", "-cp", f"{self.lib}/*"]
        self._stdout = open(self.dir / "stdout.log", "ab")
        self.proc = subprocess.Popen(base + ["kafka.Kafka", str(self.dir / "server.properties")],
                                     stdout=self._stdout, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self._wait_ready(scaled(90))


def _assert_live(port):
    status, body = http_get(port, "/healthz")
    assert status == 200, f"/healthz {status}: {body}"


def _ready_is(port, want: int):
    """A wait_until predicate: /readyz answers want, and /healthz is 200 at every poll."""
    def check():
        _assert_live(port)
        return http_get(port, "/readyz")[0] == want
    return check


def test_readiness_through_broker_outage(kafka, workers, tmp_path):
    problem = KafkaBroker.prerequisites()
    if problem:
        missing_prerequisite(problem)
    broker = RestartableBroker(KAFKA_LIB)
    try:
        broker.start()
        topics = new_topics(broker, "outage", partitions=2)
        port = free_port()
        w = workers.start(worker_args(broker.bootstrap, unique_name("outage-g"), topics,
                                      http_port=port), name="outage")
        wait_until(_ready_is(port, 200), scaled(40), "/readyz 200 before the outage", proc=w)

        broker.kill()
        t0 = time.monotonic()
        wait_until(_ready_is(port, 503), scaled(30), "/readyz 503 with the broker down", proc=w)
        detect_s = time.monotonic() - t0
        status, body = http_get(port, "/readyz")
        assert "kafka:" in body and "kafka: ok" not in body, body
        # still alive (liveness never depends on the broker) for a few more stats intervals
        deadline = time.monotonic() + 3 * STATS_MS / 1000
        while time.monotonic() < deadline:
            _assert_live(port)
            assert http_get(port, "/readyz")[0] == 503
            time.sleep(0.2)
        assert metric_value(port, "tidewatch_kafka_coordinator_up") == 0

        broker.restart()
        t0 = time.monotonic()
        wait_until(_ready_is(port, 200), scaled(60), "/readyz 200 after the broker is back",
                   proc=w)
        recover_s = time.monotonic() - t0
        broker.produce(topics.input, [("after", json.dumps({"id": "after",
                                                            "text": "click here"}))])
        broker.wait_for_messages(topics.alerts, 1, timeout=60, proc=w)
        assert workers.stop(w) == 0, w.describe()
        print(f"broker outage: /readyz 503 after {detect_s:.1f} s, 200 again "
              f"{recover_s:.1f} s after the broker was ready")
    finally:
        broker.stop()


class RestartableRedis(RedisServer):
    """A private redis-server that can be restarted on the same port."""

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=30)

    def restart(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", self.host, "--save", "",
             "--appendonly", "no", "--dir", str(self.dir), "--daemonize", "no",
             "--logfile", str(self.dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)

        def pong():
            with self.client() as c:
                return c.command("PING") == "PONG"
        wait_until(pong, scaled(20), f"redis-server back on port {self.port}\n"
                   + tail(self.dir / "redis.log", 10))


@pytest.fixture
def private_redis():
    problem = RedisServer.prerequisites()
    if problem:
        missing_prerequisite(problem)
    server = RestartableRedis().start()
    yield server
    server.stop()


def _post(pid: str, text: str):
    return (pid, json.dumps({"id": pid, "text": text}))


def test_readiness_through_redis_outage_fail_open(kafka, workers, private_redis):
    """fail-open (the default): Redis down costs duplicate information, not readiness."""
    topics = new_topics(kafka, "redis-open", partitions=1)
    port = free_port()
    w = workers.start(worker_args(kafka.bootstrap, unique_name("redis-open-g"), topics,
                                  redis_url=private_redis.url, http_port=port), name="ropen")
    kafka.produce(topics.input, [_post("r1", "click here for the first time today")])
    kafka.wait_for_messages(topics.alerts, 1, timeout=60, proc=w)
    wait_until(_ready_is(port, 200), scaled(30), "/readyz 200", proc=w)
    assert metric_value(port, "tidewatch_redis_up") == 1

    private_redis.kill()
    kafka.produce(topics.input, [_post("r2", "click here while redis is away")])
    kafka.wait_for_messages(topics.alerts, 2, timeout=60, proc=w)
    wait_until(lambda: metric_value(port, "tidewatch_redis_up") == 0, scaled(15),
               "tidewatch_redis_up 0", proc=w)
    assert metric_value(port, "tidewatch_redis_errors_total") >= 1
    assert metric_value(port, "tidewatch_dedup_unavailable_total") >= 1
    _assert_live(port)
    status, body = http_get(port, "/readyz")
    assert status == 200 and "failing open" in body, (status, body)
    alerts = {r.json()["post_id"]: r.json() for r in kafka.consume_all(topics.alerts, 2)}
    assert alerts["r2"]["duplicate"] == {"unavailable": True}

    private_redis.restart()
    kafka.produce(topics.input, [_post("r3", "click here now that redis is back")])
    kafka.wait_for_messages(topics.alerts, 3, timeout=60, proc=w)
    wait_until(lambda: metric_value(port, "tidewatch_redis_up") == 1, scaled(15),
               "tidewatch_redis_up 1 again", proc=w)
    assert workers.stop(w) == 0, w.describe()


def test_readiness_through_redis_outage_pause(kafka, workers, private_redis):
    """dedup.on_unavailable = pause: the worker cannot make progress without Redis, so it is
    not ready until Redis answers; it stays live all along."""
    topics = new_topics(kafka, "redis-pause", partitions=1)
    port = free_port()
    w = workers.start(worker_args(kafka.bootstrap, unique_name("redis-pause-g"), topics,
                                  redis_url=private_redis.url, http_port=port,
                                  extra=["-X", "dedup.on_unavailable=pause"]), name="rpause")
    kafka.produce(topics.input, [_post("p1", "click here for the first time today")])
    kafka.wait_for_messages(topics.alerts, 1, timeout=60, proc=w)
    wait_until(_ready_is(port, 200), scaled(30), "/readyz 200", proc=w)

    private_redis.kill()
    kafka.produce(topics.input, [_post("p2", "click here while redis is away")])
    wait_until(_ready_is(port, 503), scaled(30), "/readyz 503 while paused", proc=w)
    status, body = http_get(port, "/readyz")
    assert "paused" in body, body
    assert kafka.message_count(topics.alerts) == 1  # held back, not published without Redis

    private_redis.restart()
    wait_until(_ready_is(port, 200), scaled(30), "/readyz 200 once Redis answers", proc=w)
    kafka.wait_for_messages(topics.alerts, 2, timeout=60, proc=w)
    assert workers.stop(w) == 0, w.describe()


def test_publish_failure_arms_the_shutdown_watchdog(kafka, workers):
    """A permanent publishing failure (the alerts topic does not exist: refused at produce
    time or in the delivery report) stops the worker without committing the post, like a
    SIGTERM would: the shutdown watchdog is armed for that drain too, so a close that hangs
    cannot keep a failed worker alive (issue #12, item 9; before, it started on signals only)."""
    topics = SimpleNamespace(input=unique_name("dfail-posts"), alerts=unique_name("dfail-none"),
                             dlq=unique_name("dfail-dlq"))
    kafka.create_topics([topics.input, topics.dlq], partitions=1)  # no alerts topic
    group = unique_name("dfail-g")
    w = workers.start(worker_args(kafka.bootstrap, group, topics,
                                  extra=["-X", "kafka.topic.metadata.propagation.max.ms=1000",
                                         "-X", "shutdown_timeout_s=20"]), name="dfail")
    kafka.produce(topics.input, [_post("d1", "click here for the first time today")])
    wait_until(lambda: w.poll() is not None, scaled(60), "the worker to stop on the failure")
    err = w.stderr_text()
    assert w.returncode == 1, w.describe()
    assert "stopping without committing" in err, w.describe()
    assert "shutdown watchdog armed" in err, w.describe()
    # nothing committed: the post is re-read once the topic exists
    assert kafka.committed_offsets(group, topics.input).get(0, -1001) in (0, -1001)


def test_idle_worker_reports_redis_down(kafka, workers, private_redis):
    """/readyz follows Redis even when no post flows: an idle worker asks Redis itself (PING,
    once a second). Before, it kept the last batch's answer: an idle worker with Redis gone
    stayed ready under the pause policy (issue #12, item 8)."""
    topics = new_topics(kafka, "redis-idle", partitions=1)
    port = free_port()
    w = workers.start(worker_args(kafka.bootstrap, unique_name("redis-idle-g"), topics,
                                  redis_url=private_redis.url, http_port=port,
                                  extra=["-X", "dedup.on_unavailable=pause"]), name="ridle")
    kafka.produce(topics.input, [_post("i1", "click here for the first time today")])
    kafka.wait_for_messages(topics.alerts, 1, timeout=60, proc=w)
    wait_until(_ready_is(port, 200), scaled(30), "/readyz 200", proc=w)

    private_redis.kill()  # and no more posts: the worker stays idle
    wait_until(_ready_is(port, 503), scaled(15), "/readyz 503 while idle without Redis", proc=w)
    assert metric_value(port, "tidewatch_redis_up") == 0
    _assert_live(port)

    private_redis.restart()
    wait_until(_ready_is(port, 200), scaled(15), "/readyz 200 once Redis answers again", proc=w)
    assert metric_value(port, "tidewatch_redis_up") == 1
    assert workers.stop(w) == 0, w.describe()


def test_alert_the_broker_refuses_goes_to_dead_letters(kafka, workers):
    """An alert the broker refuses for good (larger than the alerts topic's max.message.bytes)
    must not stop the worker on the same post after every restart: it becomes a dead letter
    with the reason, and the partition moves on (issue #12, item 3)."""
    topics = SimpleNamespace(input=unique_name("rej-posts"), alerts=unique_name("rej-alerts"),
                             dlq=unique_name("rej-dlq"))
    kafka.create_topics([topics.input, topics.dlq], partitions=1)
    kafka.create_topic(topics.alerts, partitions=1, config={"max.message.bytes": "1500"})
    group = unique_name("rej-g")
    w = workers.start(worker_args(kafka.bootstrap, group, topics), name="rej")
    # the alert carries the id (and is keyed by it): random, so lz4 cannot shrink it under 1500
    big_id = "".join(random.Random(12).choices(string.ascii_letters + string.digits, k=4000))
    kafka.produce(topics.input, [_post(big_id, "click here for the first time today")])
    kafka.wait_for_messages(topics.dlq, 1, timeout=60, proc=w)
    kafka.produce(topics.input, [_post("small", "click here for the first time today")])
    kafka.wait_for_messages(topics.alerts, 1, timeout=60, proc=w)

    dead = kafka.consume_all(topics.dlq, 1)[0]
    assert dead.header("reason") == "alert_rejected", dead.headers
    assert dead.header("source_offset") == "0", dead.headers
    assert b"too large" in dead.headers.get("error", b"").lower(), dead.headers
    assert [r.json()["post_id"] for r in kafka.consume_all(topics.alerts, 1)] == ["small"]
    wait_until(lambda: kafka.committed_offsets(group, topics.input) == {0: 2}, scaled(30),
               "commits past the refused alert", proc=w)
    assert w.poll() is None, w.describe()
    assert workers.stop(w) == 0, w.describe()
