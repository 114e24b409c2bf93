"""Hostile input through Kafka (issue 12 item 5): a clear error or a dead letter with a
reason, never a crash, offsets keep moving.

tests/cli/test_hostile.py feeds the corpus of tests/fixtures/hostile/gen.py to `scan`; here
every line of it is one Kafka record value (raw bytes) on the session's real broker, along
with the big posts and records that only Kafka can carry: null and empty values, null,
empty, binary and 1.2 MB keys, odd headers (empty names, binary and null values, a spoofed
`reason`, 200 of them). One `tidewatch run` (Redis store) consumes them. Checked from outside
with confluent-kafka, against `tidewatch scan --emit all` on the same lines as the oracle:

- a line scan turns into a post that alerts has exactly one alert, pointing at its record;
- a line scan turns into a post without hits has neither alert nor dead letter;
- a line scan dead-letters is one dead letter with scan's reason, the record's key, its
  bytes (or a prefix with a `truncated` header), and its source topic, partition, offset;
- a record with nothing in it (a null or empty value, a blank line) is a dead letter with
  a documented reason: nothing is dropped without a trace;
- the worker exits 0 on SIGTERM and the group's committed offsets reach the end of every
  partition.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from harness import (Producer, SOURCE_DIR, run_tidewatch, scaled, unique_name, wait_until)

sys.path.insert(0, str(SOURCE_DIR / "tests" / "fixtures" / "hostile"))
import gen  # noqa: E402

RULES = SOURCE_DIR / "examples" / "rules.yaml"
REASONS = {"invalid_json", "invalid_utf8", "not_object", "missing_id", "missing_text",
           "too_large",  # README, "Input, rules and alerts"
           "alert_rejected"}  # docs/OPERATIONS.md: the brokers refused the post's alert
PARTITIONS = 3
# Big posts reach the worker (the broker's message.max.bytes is 3 MB; these topics allow more).
TOPIC_MAX_BYTES = 8 * 1024 * 1024
HUGE_KEY = b"k" * 1_200_000


def scan_oracle(path: Path, extra=()) -> dict:
    """line number -> ("post", post_id, alert) | ("dead", reason) from `scan --emit all`."""
    r = run_tidewatch(["scan", "--rules", RULES, "--emit", "all", *extra, path], timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    out = {}
    for raw in r.stdout.splitlines():
        rec = json.loads(raw)
        assert rec["line"] not in out
        out[rec["line"]] = ("post", rec["post_id"], bool(rec["alert"]))
    for raw in r.stderr.splitlines():
        rec = json.loads(raw)
        if "dead_letter" in rec:
            dl = rec["dead_letter"]
            assert dl["line"] not in out
            out[dl["line"]] = ("dead", dl["reason"])
    return out


def produce_records(kafka, topic, records) -> list:
    """records: dicts of produce() kwargs (value, key, headers; partition chosen here,
    round-robin). Returns [(partition, offset)] in order, after every delivery report."""
    producer = Producer(kafka.client_config(**{
        "acks": "all", "enable.idempotence": True, "linger.ms": 5,
        "message.max.bytes": TOPIC_MAX_BYTES}))
    where: list = [None] * len(records)
    errors = []

    def report(i):
        def cb(err, msg):
            if err is not None:
                errors.append((i, err))
            else:
                where[i] = (msg.partition(), msg.offset())
        return cb

    for i, rec in enumerate(records):
        while True:
            try:
                producer.produce(topic, partition=i % PARTITIONS, on_delivery=report(i), **rec)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(scaled(60)) == 0 and not errors, errors[:5]
    return where


class Case:
    """One record and what must come of it."""

    def __init__(self, name, record, expect):
        self.name, self.record, self.expect = name, record, expect
        self.where = None


def line_cases(prefix, lines, oracle):
    cases = []
    for number, line in enumerate(lines, 1):
        want = oracle.get(number)
        if want is None:  # a line scan skips as blank: Kafka still has a record for it
            assert not line.strip(b"\r"), (prefix, number, line[:80])
            want = ("dead", None)
        cases.append(Case(f"{prefix}:{number}", {"value": line, "key": f"{prefix}-{number}"},
                          want))
    return cases


def kafka_only_cases():
    """Records a JSONL file cannot hold: null and empty values, odd keys and headers."""
    post = b'{"id":"%s","text":"free giveaway today"}'
    plain = b'{"id":"%s","text":"nothing to see"}'
    odd_headers = [("", b"empty name"), ("bin", bytes(range(256))), ("none", None),
                   ("reason", b"spoofed"), ("source_offset", b"-1"), ("dup", b"1"),
                   ("dup", b"2"), ("\xe9t\xe9", b"\xff\xfe")]
    many_headers = [(f"h{i}", b"v" * 100) for i in range(200)]
    C = []
    C.append(Case("null-value", {"value": None, "key": b"null-value"}, ("dead", None)))
    C.append(Case("empty-value", {"value": b"", "key": b"empty-value"}, ("dead", None)))
    C.append(Case("null-value-null-key", {"value": None}, ("dead", None)))
    C.append(Case("ws-value", {"value": b" \t ", "key": b"ws"}, ("dead", None)))
    C.append(Case("null-key", {"value": post % b"kq-null-key"}, ("post", "kq-null-key", True)))
    C.append(Case("empty-key", {"value": post % b"kq-empty-key", "key": b""},
                  ("post", "kq-empty-key", True)))
    C.append(Case("binary-key", {"value": post % b"kq-bin-key", "key": bytes(range(256))},
                  ("post", "kq-bin-key", True)))
    C.append(Case("binary-key-dead", {"value": b"notjson", "key": b"\x00\xff\xc0\xaf"},
                  ("dead", "invalid_json")))
    C.append(Case("huge-key", {"value": post % b"kq-huge-key", "key": HUGE_KEY},
                  ("post", "kq-huge-key", True)))
    C.append(Case("huge-key-dead", {"value": b"notjson", "key": HUGE_KEY},
                  ("dead", "invalid_json")))
    C.append(Case("odd-headers", {"value": post % b"kq-headers", "key": b"h1",
                                  "headers": odd_headers}, ("post", "kq-headers", True)))
    C.append(Case("odd-headers-dead", {"value": b"{", "key": b"h2", "headers": odd_headers},
                  ("dead", "invalid_json")))
    C.append(Case("many-headers", {"value": plain % b"kq-many", "key": b"h3",
                                   "headers": many_headers}, ("post", "kq-many", False)))
    C.append(Case("last-good", {"value": post % b"kq-last", "key": b"last"},
                  ("post", "kq-last", True)))
    return C


def run_worker_over(kafka, redis, workers, cases, extra=()):
    """Produces cases to a fresh 3-partition topic, runs one worker until the committed
    offsets reach the end, stops it. Returns (topics, alerts, dead letters)."""
    name = unique_name("hostile")
    topics = {k: f"{name}-{k}" for k in ("posts", "alerts", "dlq")}
    for t in topics.values():
        kafka.create_topic(t, PARTITIONS, config={"max.message.bytes": str(TOPIC_MAX_BYTES)})
    where = produce_records(kafka, topics["posts"], [c.record for c in cases])
    for c, w in zip(cases, where):
        c.where = w
    group = unique_name("hostile-g")
    w = workers.start(["run", "--brokers", kafka.bootstrap, "--group", group,
                       "--input-topic", topics["posts"], "--output-topic", topics["alerts"],
                       "--dlq-topic", topics["dlq"], "--rules", RULES,
                       "--redis", redis.url, *extra], name="hostile")
    high = kafka.high_watermarks(topics["posts"])
    assert sum(high.values()) == len(cases)

    def at_end():
        got = kafka.committed_offsets(group, topics["posts"])
        return all(got.get(p) == h for p, h in high.items() if h > 0)

    wait_until(at_end, scaled(60), lambda: f"commits at the end {high} "
               f"(have {kafka.committed_offsets(group, topics['posts'])})", interval=0.5,
               proc=w)
    rc = workers.stop(w)
    assert rc == 0, w.describe()
    crash = [ln for ln in w.stderr_text().splitlines()
             if any(s in ln for s in ("Sanitizer", "runtime error:", "SUMMARY:"))]
    assert not crash, crash[:5]
    want_alerts = sum(1 for c in cases if c.expect[0] == "post" and c.expect[2])
    want_dead = sum(1 for c in cases if c.expect[0] == "dead")
    alerts = kafka.consume_all(topics["alerts"], want_alerts, timeout=60)
    dead = kafka.consume_all(topics["dlq"], want_dead, timeout=60)
    return topics, alerts, dead


def check_outcomes(cases, topics, alerts, dead):
    by_source = {}
    problems = []
    for r in alerts:
        if r.header("type"):  # a control record (the flood guard muting broad.prize), no post's
            continue
        a = r.json()
        src = (a["source"]["partition"], a["source"]["offset"])
        by_source.setdefault(src, []).append(("alert", a["post_id"], r))
    for r in dead:
        reasons = [v for k, v in r.header_list if k == "reason"]
        if len(reasons) != 1:
            problems.append(f"dead letter with reason headers {reasons}: {r.headers}")
            continue
        if r.header("source_topic") != topics["posts"]:
            problems.append(f"dead letter from {r.header('source_topic')}")
        src = (int(r.header("source_partition")), int(r.header("source_offset")))
        by_source.setdefault(src, []).append(("dead", reasons[0].decode(), r))
    for c in cases:
        got = by_source.pop(c.where, [])
        kind = c.expect[0]
        if kind == "post":
            _, post_id, alert = c.expect
            want = [("alert", post_id)] if alert else []
            have = [(g[0], g[1]) for g in got]
            if have != want:
                problems.append(f"{c.name}: expected {want or 'nothing'}, got {have}")
            continue
        reason = c.expect[1]
        if len(got) != 1 or got[0][0] != "dead":
            problems.append(f"{c.name}: expected one dead letter ({reason or 'any reason'}), "
                            f"got {[(g[0], g[1]) for g in got]}")
            continue
        _, got_reason, r = got[0]
        if got_reason not in REASONS or (reason is not None and got_reason != reason):
            problems.append(f"{c.name}: dead letter reason {got_reason!r}, want {reason}")
        if not r.header("error"):
            problems.append(f"{c.name}: dead letter without an error header")
        key = c.record.get("key") or b""
        key = key.encode() if isinstance(key, str) else key
        if (r.key or b"") != key:
            cut = r.header("key_truncated")
            if not (cut and int(cut) == len(key) and r.key and key.startswith(r.key)):
                problems.append(f"{c.name}: dead letter key {(r.key or b'')[:40]!r} "
                                f"({len(r.key or b'')} bytes, key_truncated={cut}) != "
                                f"{key[:40]!r} ({len(key)} bytes)")
        value = c.record.get("value") or b""
        if got_reason == "alert_rejected":  # its value is the refused alert, not the post
            continue
        if (r.value or b"") != value:
            truncated = r.header("truncated")
            if not (truncated and value.startswith(r.value or b"")
                    and int(truncated) == len(value)):
                problems.append(f"{c.name}: dead letter value differs ({len(r.value or b'')} "
                                f"of {len(value)} bytes, truncated={truncated})")
    for src, got in by_source.items():
        problems.append(f"records for {src} which was not produced: {[g[:2] for g in got]}")
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:40])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    gen.write(str(d))
    return d


def test_hostile_posts_through_kafka(kafka, redis_clean, workers, corpus):
    """Every line of the hostile corpus, the big posts (default max_post_bytes: too_large)
    and the Kafka-only records, through one worker."""
    posts, big = corpus / "posts.jsonl", corpus / "posts-big.jsonl"
    lines = posts.read_bytes().split(b"\n")[:-1]
    big_lines = big.read_bytes().split(b"\n")[:-1]
    cases = (line_cases("posts", lines, scan_oracle(posts))
             + line_cases("big", big_lines, scan_oracle(big))
             + kafka_only_cases())
    assert sum(c.expect[0] == "dead" and c.expect[1] == "too_large" for c in cases) == 6
    topics, alerts, dead = run_worker_over(kafka, redis_clean, workers, cases)
    check_outcomes(cases, topics, alerts, dead)


def test_big_posts_under_a_raised_limit(kafka, redis_clean, workers, corpus):
    """With max_post_bytes at 16 MiB the big posts are scanned as `scan` scans them (the 1 MB
    text alerts, a million emoji are matched), the truncated one is still a dead letter."""
    big = corpus / "posts-big.jsonl"
    limit = ("-X", "max_post_bytes=16777216")
    oracle = scan_oracle(big, limit)
    assert oracle[1] == ("post", "big1", True), oracle.get(1)
    cases = line_cases("big", big.read_bytes().split(b"\n")[:-1], oracle)
    # A 2 MB post id on a post that alerts: the alert (keyed by the id) is over the worker's
    # message.max.bytes, so it becomes an alert_rejected dead letter (docs/OPERATIONS.md) whose
    # 2 MB key must not be refused in turn.
    long_id = b"i" * 2_000_000
    cases.append(Case("long-id-alert", {"value": b'{"id":"%s","text":"free giveaway"}' % long_id,
                                        "key": long_id}, ("dead", "alert_rejected")))
    topics, alerts, dead = run_worker_over(kafka, redis_clean, workers, cases, extra=limit)
    check_outcomes(cases, topics, alerts, dead)
