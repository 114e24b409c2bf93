"""The fault campaign, bounded for the suite (tests/RELIABILITY.md): the worker is SIGKILLed at
seeded random points while posts stream in, restarted each time, and workers join and leave a
group mid-stream, on the real broker with a real redis-server. An independent reader (a fresh
confluent-kafka consumer) then checks the outputs against `tidewatch scan` on the same posts:
no flagged post without an alert (lost), no alert for a post that should have none
(unexpected), every dead letter and campaign milestone there, duplicates counted (allowed after
a kill), and the group's commits at the end of every partition.

Knobs (longer runs, scripts/faults-full.sh): TW_FAULTS_KILLS (default 20), TW_FAULTS_RECORDS
(5000), TW_FAULTS_SEED (12), TW_FAULTS_FAULT_RECORDS (1500, the Redis and broker fault
tests), TW_FAULTS_REPORT (a file the measured figures are appended to, one JSON line per
test).
"""

import json
import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness import Producer, run_tidewatch, scaled, unique_name, wait_until

RULES = Path(__file__).resolve().parent.parent / "fixtures" / "integration" / "rules.yaml"
KILLS = int(os.environ.get("TW_FAULTS_KILLS", "20"))
RECORDS = int(os.environ.get("TW_FAULTS_RECORDS", "5000"))
SEED = int(os.environ.get("TW_FAULTS_SEED", "12"))
PARTITIONS = 3
WAVES = 3  # copy-paste campaigns, each reaching every milestone
MILESTONES = (10, 50)

# A restarted worker joins when the broker gives up on the killed one: its session timeout.
# 6 s is Kafka's default group.min.session.timeout.ms (worker_args, shared with
# test_broker_faults.py, whose coordinator outages are sized against it).
FAST_GROUP = ["-X", "kafka.session.timeout.ms=6000", "-X", "kafka.heartbeat.interval.ms=500"]
# The kill test's workers (later -X win): the harness's broker allows sessions from 1 s, and
# 2 s leaves a loaded machine room for a late heartbeat, so a restarted worker is assigned
# about 2.5 s after a kill. Commits every 500 ms keep the posts re-read after a kill (the
# duplicates) few: a kill lands 0.2-1.6 s after the worker got its partitions.
KILL_GROUP = ["-X", "kafka.session.timeout.ms=2000", "-X", "kafka.heartbeat.interval.ms=400",
              "-X", "kafka.auto.commit.interval.ms=500"]

WAVE_TEXTS = ("copy and paste this message to every friend you know before midnight",
              "our neighbourhood bakery deserves a thousand stars share if you agree",
              "the mayor must resign now sign the petition and tell everyone")

WORDS = ("river table orange window summer garden pencil coffee market bridge mountain "
         "yellow quiet music evening letter station winter forest planet candle harbor "
         "silver morning castle button meadow thunder violet engine ladder pepper island "
         "marble rocket saddle velvet walnut canyon lantern").split()


def make_posts(n, seed):
    """n posts (key, value, partition), seeded: ordinary posts of random words, rule hits,
    three copy-paste waves that reach every campaign milestone, and undecodable records."""
    rng = random.Random(seed)
    wave_len = MILESTONES[-1] + 10
    # each wave starts early enough to finish: ~wave_len / 0.3 posts after its start
    last_start = max(1, n - int(wave_len / 0.3) - 200)
    starts = {rng.randrange(last_start): w for w in range(WAVES)}
    posts, active, wave_sent = [], [], Counter()
    for i in range(n):
        roll = rng.random()
        pid = f"p{i}"
        words = " ".join(rng.choice(WORDS) for _ in range(12))
        if i in starts:
            active.append(starts[i])
        if roll < 0.01:
            posts.append((f"bad{i}", b'{"id": "bad' + str(i).encode() + b'", "text": ',
                          i % PARTITIONS))
            continue
        if active and roll < 0.3:
            wave = active[0]
            wave_sent[wave] += 1
            if wave_sent[wave] == wave_len:
                active.pop(0)
            pid = f"w{wave}-{wave_sent[wave]}"
            text = WAVE_TEXTS[wave]
        elif roll < 0.15:
            text = f"{words} click here {rng.choice(WORDS)}"
        elif roll < 0.20:
            text = f"free giveaway {words}"
        else:
            text = words
        value = json.dumps({"id": pid, "text": text, "author": f"u{rng.randrange(500)}",
                            "ts": 1732780800 + i})
        posts.append((pid, value, i % PARTITIONS))
    return posts


def expected_outcomes(posts, tmp_path):
    """The alerts and dead letters `tidewatch scan` gives for the same posts."""
    path = tmp_path / "posts.jsonl"
    path.write_bytes(b"".join((v if isinstance(v, bytes) else v.encode()) + b"\n"
                              for _k, v, _p in posts))
    out = run_tidewatch(["scan", "--rules", str(RULES), str(path)], timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    alerts, dead = set(), set()
    for line in (out.stdout + out.stderr).decode().splitlines():
        rec = json.loads(line)
        if "dead_letter" in rec:
            dead.add(posts[rec["dead_letter"]["line"] - 1][0])
        elif "post_id" in rec:
            alerts.add(rec["post_id"])
    return alerts, dead


def topics_for(kafka, prefix):
    t = SimpleNamespace(input=unique_name(f"{prefix}-posts"), alerts=unique_name(f"{prefix}-al"),
                        dlq=unique_name(f"{prefix}-dlq"), campaign=unique_name(f"{prefix}-camp"))
    kafka.create_topics(list(vars(t).values()), partitions=PARTITIONS)
    return t


def worker_args(kafka, group, t, redis_url):
    return (["run", "--brokers", kafka.bootstrap, "--group", group, "--input-topic", t.input,
             "--output-topic", t.alerts, "--dlq-topic", t.dlq, "--rules", str(RULES),
             "--redis", redis_url, "-X", "batch_timeout_ms=50", "-X", "batch_size=100",
             "-X", f"campaign.topic={t.campaign}", "-X",
             "campaign.milestones=" + ",".join(map(str, MILESTONES)), "-X",
             "campaign.min_authors=2"] + FAST_GROUP)


class PacedProducer(threading.Thread):
    """Produces the posts evenly over `seconds`, so faults land mid-stream."""

    def __init__(self, kafka, topic, posts, seconds):
        super().__init__(daemon=True)
        self.kafka, self.topic, self.posts, self.seconds = kafka, topic, posts, seconds
        self.errors, self.done = [], threading.Event()

    def run(self):
        producer = Producer(self.kafka.client_config(**{"acks": "all",
                                                        "enable.idempotence": True,
                                                        "linger.ms": 5}))

        def on_delivery(err, _msg):
            if err is not None:
                self.errors.append(err)

        start = time.monotonic()
        chunk = max(1, len(self.posts) // 100)
        for first in range(0, len(self.posts), chunk):
            for key, value, part in self.posts[first:first + chunk]:
                producer.produce(self.topic, key=key, value=value, partition=part,
                                 on_delivery=on_delivery)
            producer.poll(0)
            due = start + self.seconds * (first + chunk) / len(self.posts)
            time.sleep(max(0.0, due - time.monotonic()))
        if producer.flush(scaled(30)):
            self.errors.append("not all posts delivered")
        self.done.set()


def assigned(worker):
    return any(r.get("msg", "").startswith("assigned ") and not r["msg"].startswith("assigned 0")
               for r in worker.log_records())


def wait_committed_to_end(kafka, group, topic, timeout, proc=None):
    state = {}

    def at_end():
        state["hw"] = kafka.high_watermarks(topic)
        state["committed"] = kafka.committed_offsets(group, topic)
        return all(hw == 0 or state["committed"].get(p, -1) == hw
                   for p, hw in state["hw"].items())

    wait_until(at_end, scaled(timeout),
               lambda: f"commits {state.get('committed')} at the ends {state.get('hw')}",
               interval=0.5, proc=proc)


def check_outputs(kafka, t, expected_alerts, expected_dead):
    """Reads every output topic from the beginning; returns the campaign's figures."""
    alerts = kafka.consume_all(t.alerts)
    dead = kafka.consume_all(t.dlq)
    campaigns = kafka.consume_all(t.campaign)
    alert_keys = Counter(r.key.decode() for r in alerts)
    dead_keys = Counter(r.key.decode() for r in dead)
    milestones = Counter()
    for r in campaigns:
        body = r.json()
        samples = body["campaign"]["sample_post_ids"]
        if samples and samples[0].startswith("w"):
            milestones[(samples[0].split("-")[0], body["campaign"]["milestone"])] += 1
    want_milestones = {(f"w{w}", m) for w in range(WAVES) for m in MILESTONES}
    return {
        "alerts_expected": len(expected_alerts),
        "lost": sorted(expected_alerts - set(alert_keys))[:20],
        "unexpected": sorted(set(alert_keys) - expected_alerts)[:20],
        "duplicates": sum(c - 1 for c in alert_keys.values()),
        "dead_letters_lost": sorted(expected_dead - set(dead_keys))[:20],
        "dead_letters_unexpected": sorted(set(dead_keys) - expected_dead)[:20],
        "dead_letter_duplicates": sum(c - 1 for c in dead_keys.values()),
        "campaigns_lost": sorted(map(str, want_milestones - set(milestones))),
        "campaign_duplicates": sum(c - 1 for c in milestones.values()),
    }


def report(name, figures):
    line = json.dumps({"test": name, **figures}, sort_keys=True)
    print(f"\nfault campaign: {line}")
    if os.environ.get("TW_FAULTS_REPORT"):
        with open(os.environ["TW_FAULTS_REPORT"], "a", encoding="utf-8") as f:
            f.write(line + "\n")


def assert_nothing_lost(figures):
    for key in ("lost", "unexpected", "dead_letters_lost", "dead_letters_unexpected",
                "campaigns_lost"):
        assert not figures[key], f"{key}: {figures[key]} ({figures})"


def reread_windows(kafka, group, topic):
    """Taken right after a kill: per partition the range [committed, end) of offsets the
    killed worker may have processed (and published for) without committing. Its successor
    starts at the commit, so only these records can be handled twice. A commit still in flight
    or a post produced meanwhile only widens the range: the bound stays an upper bound."""
    committed = kafka.committed_offsets(group, topic)
    return {p: (max(0, committed.get(p, 0)), hw)
            for p, hw in kafka.high_watermarks(topic).items()}


def duplicate_bounds(kafka, topic, windows, expected_alerts, expected_dead):
    """The most alert and dead-letter duplicates the kills can explain: every expected alert
    (dead letter) whose post lies in a kill's re-read window, counted once per window it lies
    in. Anything beyond is a duplicate without a cause (a member dropped from the group, a
    producer retry published twice)."""
    key_at = {(r.partition, r.offset): r.key.decode() for r in kafka.consume_all(topic)}
    alerts = dead = records = 0
    for window in windows:
        for part, (lo, hi) in window.items():
            for offset in range(lo, hi):
                key = key_at.get((part, offset))
                records += 1
                alerts += key in expected_alerts
                dead += key in expected_dead
    return {"reread_records_bound": records, "duplicates_bound": alerts,
            "dead_letter_duplicates_bound": dead}


def test_sigkill_at_random_points(kafka, redis, workers, tmp_path):
    """KILLS SIGKILLs at seeded random points of a RECORDS-post stream, each followed by a
    restart, and before about half of them Redis stalls past the worker's timeout (DEBUG
    SLEEP: replies lost, fail-open, campaign claims rechecked): 0 lost, 0 unexpected, every
    campaign milestone published, commits at the end of every partition, and duplicates
    within the bound the kills explain: at most the flagged posts between the group's commit
    and the end of the partition at each kill (duplicate_bounds)."""
    from test_dedup_fleet import OwnRedis  # noqa: PLC0415 - a server with DEBUG enabled

    started = time.monotonic()
    rng = random.Random(SEED)
    posts = make_posts(RECORDS, SEED)
    expected_alerts, expected_dead = expected_outcomes(posts, tmp_path)
    t = topics_for(kafka, "faults")
    group = unique_name("faults")
    server = OwnRedis("--enable-debug-command", "yes").start()
    args = worker_args(kafka, group, t, f"redis://127.0.0.1:{server.port}/0")
    args += ["-X", "redis_timeout_ms=300"] + KILL_GROUP
    # a kill, the restart and the wait for the dead member's session take about 3.3 s
    producer = PacedProducer(kafka, t.input, posts, seconds=max(20.0, KILLS * 3.3))
    producer.start()
    kills_started = time.monotonic()
    w = workers.start(args, name="killed")
    kills = stalls = 0
    windows = []
    try:
        while kills < KILLS:
            wait_until(lambda: assigned(w), scaled(60), "the restarted worker to be assigned",
                       proc=w)
            time.sleep(rng.uniform(0.2, 1.6))
            if rng.random() < 0.5:
                server_command(server.port, "DEBUG", "SLEEP", "0.8")
                stalls += 1
                time.sleep(rng.uniform(0.0, 0.5))
            assert w.poll() is None, w.describe()
            w.proc.send_signal(signal.SIGKILL)
            w.proc.wait(timeout=30)
            kills += 1
            windows.append(reread_windows(kafka, group, t.input))
            w = workers.start(args, name="killed")
        kills_s = time.monotonic() - kills_started
        producer.join(timeout=scaled(120))
        assert producer.done.is_set() and not producer.errors, producer.errors[:5]
        wait_committed_to_end(kafka, group, t.input, timeout=90, proc=w)
        assert workers.stop(w) == 0, w.describe()
    finally:
        server.close()
    figures = check_outputs(kafka, t, expected_alerts, expected_dead)
    figures.update(duplicate_bounds(kafka, t.input, windows, expected_alerts, expected_dead))
    lost_replies = sum("unavailable" in r.get("msg", "") or "timed out" in r.get("msg", "")
                       for x in workers.started for r in x.log_records())
    figures.update(kills=kills, kills_s=round(kills_s, 1), redis_stalls=stalls,
                   redis_failures_logged=lost_replies, records=len(posts), seed=SEED,
                   wall_s=round(time.monotonic() - started, 1))
    report("sigkill", figures)
    assert_nothing_lost(figures)
    assert figures["duplicates"] <= figures["duplicates_bound"], figures
    assert figures["dead_letter_duplicates"] <= figures["dead_letter_duplicates_bound"], figures


def test_workers_join_and_leave_mid_stream(kafka, redis_clean, workers, tmp_path):
    """Three workers of one group: the second and third join mid-stream, the first and
    second are SIGTERMed mid-stream (each drains and commits before it leaves): 0 lost,
    0 unexpected, 0 duplicates, commits at the end."""
    started = time.monotonic()
    posts = make_posts(RECORDS, SEED + 1)
    expected_alerts, expected_dead = expected_outcomes(posts, tmp_path)
    t = topics_for(kafka, "rebal")
    group = unique_name("rebal")
    args = worker_args(kafka, group, t, redis_clean.url)
    producer = PacedProducer(kafka, t.input, posts, seconds=16.0)
    producer.start()
    w1 = workers.start(args, name="w1")
    wait_until(lambda: assigned(w1), scaled(60), "w1 to be assigned", proc=w1)
    time.sleep(3)
    w2 = workers.start(args, name="w2")
    time.sleep(3)
    w3 = workers.start(args, name="w3")
    time.sleep(3)
    assert workers.stop(w1) == 0, w1.describe()
    time.sleep(3)
    assert workers.stop(w2) == 0, w2.describe()
    producer.join(timeout=scaled(120))
    assert producer.done.is_set() and not producer.errors, producer.errors[:5]
    wait_committed_to_end(kafka, group, t.input, timeout=90, proc=w3)
    assert workers.stop(w3) == 0, w3.describe()
    figures = check_outputs(kafka, t, expected_alerts, expected_dead)
    figures.update(records=len(posts), seed=SEED + 1, wall_s=round(time.monotonic() - started, 1))
    report("rebalance", figures)
    assert_nothing_lost(figures)
    assert figures["duplicates"] == 0, figures
    assert figures["dead_letter_duplicates"] == 0, figures


def test_redis_reply_lost_keeps_campaign_claims(kafka, redis, workers, tmp_path):
    """Issue 12, 2: Redis runs the batch script that claims a milestone but the worker's
    read times out first (DEBUG SLEEP holds the reply; fail-open goes on without it). The
    post's claim must still be published, as a replay once Redis answers, and its offset
    committed only then; before, the record was never published."""
    from test_dedup_fleet import OwnRedis  # noqa: PLC0415 - a restartable server with flags

    server = OwnRedis("--enable-debug-command", "yes").start()
    try:
        t = topics_for(kafka, "lostreply")
        group = unique_name("lostreply")
        args = worker_args(kafka, group, t, f"redis://127.0.0.1:{server.port}/0")
        args += ["-X", "campaign.milestones=5", "-X", "redis_timeout_ms=300"]
        posts = [(f"c{i}", json.dumps({"id": f"c{i}", "text": WAVE_TEXTS[0],
                                       "author": f"a{i}", "ts": 1732780800 + i}), 0)
                 for i in range(5)]
        w = workers.start(args, name="lostreply")
        wait_until(lambda: assigned(w), scaled(60), "the worker to be assigned", proc=w)
        kafka.produce(t.input, posts[:4])
        wait_committed_to_end(kafka, group, t.input, timeout=60, proc=w)
        sleeper = threading.Thread(
            target=lambda: server_command(server.port, "DEBUG", "SLEEP", "3"), daemon=True)
        sleeper.start()
        time.sleep(0.2)  # Redis is asleep: the fifth post's script waits unread
        kafka.produce(t.input, posts[4:])
        sleeper.join(timeout=30)
        wait_committed_to_end(kafka, group, t.input, timeout=60, proc=w)
        records = kafka.consume_all(t.campaign)
        assert workers.stop(w) == 0, w.describe()
        got = [(r.key.decode(), r.json()["post_id"]) for r in records]
        assert len(got) >= 1 and all(k.endswith(":5") and pid == "c4" for k, pid in got), (
            got, w.describe())
        logs = " ".join(r.get("msg", "") for r in w.log_records())
        assert "unavailable" in logs, w.describe()  # the reply really was lost
    finally:
        server.close()


def server_command(port, *args):
    from harness import RedisClient  # noqa: PLC0415

    with RedisClient("127.0.0.1", port, timeout=30) as c:
        return c.command(*args)


# ---------------------------------------------------------------------------------------
# Redis and broker faults (issue 12, campaign items 3 and 4)

FAULT_RECORDS = int(os.environ.get("TW_FAULTS_FAULT_RECORDS", "1500"))
RECOVERY_WAVE = 6  # near-duplicate posts sent once the faults are over
RECOVERY_TEXT = "free giveaway for the recovery wave reply before the night is over"


def recovery_wave(tag):
    """RECOVERY_WAVE posts of one text by different authors, all on partition 0 (in order):
    once Redis answers again the second and later ones must be clustered with the first."""
    return [(f"rw{tag}-{i}", json.dumps({"id": f"rw{tag}-{i}", "text": RECOVERY_TEXT,
                                         "author": f"rwa{i}", "ts": 1732790000 + i}), 0)
            for i in range(RECOVERY_WAVE)]


def wave_not_clustered(kafka, t, wave):
    """The wave's second and later posts whose alerts lack a duplicate object with
    count > 1 (none when the duplicate state recovered once Redis was back), and the highest
    count seen."""
    by_post = {}
    for r in kafka.consume_all(t.alerts):
        body = r.json()
        by_post.setdefault(body["post_id"], []).append(body.get("duplicate"))
    bad, top = [], 0
    for pid, _value, _part in wave[1:]:
        dups = by_post.get(pid) or [None]
        for dup in dups:
            if isinstance(dup, dict) and dup.get("count", 0) > 1:
                top = max(top, dup["count"])
            else:
                bad.append((pid, dup))
    return bad, top


def in_thread(fn, *args):
    thread = threading.Thread(target=fn, args=args, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("policy", ["fail-open", "pause"])
def test_redis_faults_mid_stream(kafka, redis, workers, tmp_path, policy):
    """One worker, a FAULT_RECORDS-post stream, and three Redis faults in turn while it
    flows: redis-server SIGSTOPped for 2.5 s then SIGCONTed, killed and restarted on the same
    port 1.5 s later (its data gone), and slowed (DEBUG SLEEP 1.5 s, past the worker's
    300 ms timeout). Under both policies: 0 lost, 0 unexpected, every dead letter, commits at
    the end, exit 0 on SIGTERM, and a near-duplicate wave sent after the faults is clustered
    (duplicate count > 1). Campaign milestones are reported, not asserted: a restarted Redis
    forgets the clusters, and fail-open does not count the posts it let through."""
    from test_dedup_fleet import OwnRedis  # noqa: PLC0415 - restartable, DEBUG enabled

    started = time.monotonic()
    seed = SEED + (2 if policy == "fail-open" else 3)
    posts = make_posts(FAULT_RECORDS, seed)
    wave = recovery_wave(policy)
    expected_alerts, expected_dead = expected_outcomes(posts + wave, tmp_path)
    t = topics_for(kafka, f"rf-{policy}")
    group = unique_name(f"rf-{policy}")
    server = OwnRedis("--enable-debug-command", "yes").start()
    args = worker_args(kafka, group, t, f"redis://127.0.0.1:{server.port}/0")
    args += ["-X", "redis_timeout_ms=300", "-X", f"dedup.on_unavailable={policy}"]
    try:
        w = workers.start(args, name=f"rf-{policy}")
        wait_until(lambda: assigned(w), scaled(60), "the worker to be assigned", proc=w)
        producer = PacedProducer(kafka, t.input, posts, seconds=14.0)
        producer.start()
        time.sleep(2.0)
        os.kill(server.proc.pid, signal.SIGSTOP)
        time.sleep(2.5)
        os.kill(server.proc.pid, signal.SIGCONT)
        time.sleep(1.5)
        server.kill()
        time.sleep(1.5)
        server.start()
        time.sleep(2.0)
        sleeper = in_thread(server_command, server.port, "DEBUG", "SLEEP", "1.5")
        sleeper.join(timeout=30)
        producer.join(timeout=scaled(120))
        assert producer.done.is_set() and not producer.errors, producer.errors[:5]
        wait_committed_to_end(kafka, group, t.input, timeout=60, proc=w)
        kafka.produce(t.input, [(k, v, p) for k, v, p in wave])
        wait_committed_to_end(kafka, group, t.input, timeout=60, proc=w)
        assert w.poll() is None, w.describe()
        assert workers.stop(w) == 0, w.describe()
    finally:
        if server.proc is not None:
            os.kill(server.proc.pid, signal.SIGCONT)
        server.close()
    figures = check_outputs(kafka, t, expected_alerts, expected_dead)
    logs = [r.get("msg", "") for r in w.log_records()]
    figures.update(policy=policy, records=len(posts) + len(wave), seed=seed,
                   redis_failures_logged=sum("unavailable" in m or "timed out" in m
                                             for m in logs),
                   wall_s=round(time.monotonic() - started, 1))
    not_clustered, figures["recovery_wave_max_count"] = wave_not_clustered(kafka, t, wave)
    report(f"redis-faults-{policy}", figures)
    for key in ("lost", "unexpected", "dead_letters_lost", "dead_letters_unexpected"):
        assert not figures[key], f"{key}: {figures[key]} ({figures})"
    assert not not_clustered, f"recovery wave not clustered: {not_clustered}"
    assert figures["redis_failures_logged"] >= 1, "the faults went unnoticed: " + w.describe()


def test_broker_stopped_and_restarted_mid_stream(kafka, redis_clean, workers, tmp_path):
    """A private broker (the session's must stay up) is SIGKILLed mid-stream and restarted
    on the same ports and data 3 s later, while the posts keep coming (the producer
    buffers): 0 lost, 0 unexpected, every dead letter and campaign milestone, commits at the
    end, no crash (exit 0 on SIGTERM), /readyz 503 while the broker is down and 200 after."""
    from harness import KAFKA_LIB, KafkaBroker, free_port, missing_prerequisite  # noqa: PLC0415
    from test_ops import RestartableBroker, http_get  # noqa: PLC0415

    problem = KafkaBroker.prerequisites()
    if problem:
        missing_prerequisite(problem)
    started = time.monotonic()
    posts = make_posts(FAULT_RECORDS, SEED + 4)
    expected_alerts, expected_dead = expected_outcomes(posts, tmp_path)
    broker = RestartableBroker(KAFKA_LIB)
    try:
        broker.start()
        t = topics_for(broker, "brk")
        group = unique_name("brk")
        port = free_port()
        args = worker_args(broker, group, t, redis_clean.url) + [
            "--http", f"127.0.0.1:{port}", "-X", "kafka.statistics.interval.ms=500"]
        w = workers.start(args, name="brk")
        wait_until(lambda: assigned(w), scaled(60), "the worker to be assigned", proc=w)
        wait_until(lambda: http_get(port, "/readyz")[0] == 200, scaled(30), "/readyz 200",
                   proc=w)
        producer = PacedProducer(broker, t.input, posts, seconds=14.0)
        producer.start()
        time.sleep(4.0)
        broker.kill()
        down = time.monotonic()
        wait_until(lambda: http_get(port, "/readyz")[0] == 503, scaled(30),
                   "/readyz 503 with the broker down", proc=w)
        detect_s = time.monotonic() - down
        time.sleep(max(0.0, 3.0 - detect_s))
        assert http_get(port, "/healthz")[0] == 200 and w.poll() is None, w.describe()
        broker.restart()
        back = time.monotonic()
        wait_until(lambda: http_get(port, "/readyz")[0] == 200, scaled(60),
                   "/readyz 200 after the broker is back", proc=w)
        recover_s = time.monotonic() - back
        producer.join(timeout=scaled(120))
        assert producer.done.is_set() and not producer.errors, producer.errors[:5]
        wait_committed_to_end(broker, group, t.input, timeout=90, proc=w)
        assert workers.stop(w) == 0, w.describe()
        figures = check_outputs(broker, t, expected_alerts, expected_dead)
    finally:
        broker.stop()
    figures.update(records=len(posts), seed=SEED + 4, readyz_503_after_s=round(detect_s, 1),
                   readyz_200_after_restart_s=round(recover_s, 1),
                   wall_s=round(time.monotonic() - started, 1))
    report("broker-restart", figures)
    assert_nothing_lost(figures)


# ---------------------------------------------------------------------------------------
# A Redis Cluster master failing over (issue 12, campaign item 4)


class FailoverCluster:
    """Three masters with a replica each on loopback (redis-cli --cluster create
    --cluster-replicas 1), a short cluster-node-timeout so that a dead master's replica is
    promoted within about 2-3 s."""

    NODE_TIMEOUT_MS = 1000

    def __init__(self):
        import tempfile  # noqa: PLC0415

        self.dir = Path(tempfile.mkdtemp(prefix="tw-redis-ha-"))
        self.procs = {}  # port -> Popen

    def start(self, nodes=6):
        import subprocess  # noqa: PLC0415

        from harness import tail  # noqa: PLC0415
        from test_dedup_cluster import cluster_port  # noqa: PLC0415

        for _ in range(nodes):
            port = cluster_port()
            self.procs[port] = subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--cluster-enabled", "yes", "--cluster-config-file",
                 str(self.dir / f"nodes-{port}.conf"), "--cluster-node-timeout",
                 str(self.NODE_TIMEOUT_MS), "--cluster-replica-validity-factor", "0",
                 "--dir", str(self.dir), "--logfile", str(self.dir / f"redis-{port}.log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        for port in self.procs:
            wait_until(lambda p=port: self.command(p, "PING") == "PONG", scaled(20),
                       lambda p=port: "redis-server\n" + tail(self.dir / f"redis-{p}.log"))
        out = subprocess.run(["redis-cli", "--cluster", "create"] +
                             [f"127.0.0.1:{p}" for p in self.procs] +
                             ["--cluster-replicas", "1", "--cluster-yes"],
                             capture_output=True, text=True, timeout=scaled(60))
        assert out.returncode == 0, out.stdout + out.stderr
        wait_until(lambda: self.healthy(replicas=True), scaled(60),
                   lambda: f"a healthy cluster with replicas in sync: {self.shards()}")
        return self

    @staticmethod
    def command(port, *args):
        from harness import RedisClient  # noqa: PLC0415

        with RedisClient("127.0.0.1", port, timeout=5) as c:
            return c.command(*args)

    @property
    def url(self):
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.procs)

    def live(self):
        return [p for p, proc in self.procs.items() if proc.poll() is None]

    def shards(self, port=None):
        """{master port: [replica ports]} as CLUSTER SLOTS of one live node says."""
        reply = self.command(port or self.live()[0], "CLUSTER", "SLOTS")
        shards = {}
        for entry in reply:
            nodes = [n[1] for n in entry[2:]]
            shards.setdefault(nodes[0], set()).update(nodes[1:])
        return {m: sorted(r) for m, r in shards.items()}

    def healthy(self, replicas=False):
        """Every live node: cluster_state ok, three masters, all alive, the same map; with
        replicas, every master has one whose link is up."""
        maps = []
        for port in self.live():
            if b"cluster_state:ok" not in self.command(port, "CLUSTER", "INFO"):
                return False
            maps.append(self.shards(port))
        first = maps[0]
        if len(first) != 3 or any(m != first for m in maps):
            return False
        if any(m not in self.live() for m in first):
            return False
        if replicas:
            for reps in first.values():
                if not reps or any(b"master_link_status:up" not in
                                   self.command(r, "INFO", "replication") for r in reps):
                    return False
        return True

    def failover_gracefully(self, master):
        """CLUSTER FAILOVER on master's replica (the master hands over, nothing lost);
        returns the new master's port once every live node agrees."""
        replica = self.shards()[master][0]
        assert self.command(replica, "CLUSTER", "FAILOVER") == "OK"
        wait_until(lambda: replica in self.shards() and self.healthy(), scaled(30),
                   lambda: f"{replica} promoted: {self.shards()}")
        return replica

    def kill_master(self, master):
        """SIGKILL master: after cluster-node-timeout the others mark it failed and its
        replica is elected; returns the replica's port once every live node agrees."""
        replica = self.shards()[master][0]
        self.procs[master].kill()
        self.procs[master].wait(timeout=30)
        wait_until(lambda: replica in self.shards() and self.healthy(), scaled(30),
                   lambda: f"{replica} promoted after {master} died: {self.shards()}")
        return replica

    def close(self):
        import shutil  # noqa: PLC0415

        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def failover_cluster(redis):  # `redis` only to skip (or fail in CI) without redis-server
    import shutil  # noqa: PLC0415

    from harness import missing_prerequisite  # noqa: PLC0415

    if not shutil.which("redis-cli"):
        missing_prerequisite("redis-cli not found (scripts/install-deps.sh installs it)")
    cluster = FailoverCluster()
    try:
        yield cluster.start()
    finally:
        cluster.close()


@pytest.mark.parametrize("policy", ["fail-open", "pause"])
def test_cluster_master_fails_over_mid_stream(kafka, failover_cluster, workers, tmp_path,
                                              policy):
    """The duplicate store on a 3-master, 3-replica Redis Cluster (redis+cluster://) while
    FAULT_RECORDS posts stream in: one master hands over to its replica (CLUSTER FAILOVER),
    then another master is SIGKILLed and its replica elected. Under both policies: 0 lost,
    0 unexpected, every dead letter, commits at the end, exit 0 on SIGTERM, and a
    near-duplicate wave sent after the failovers is clustered (duplicate count > 1): the
    client follows the new slot map. Campaign milestones are reported, not asserted (a
    killed master takes its unreplicated writes along; fail-open does not count what it let
    through)."""
    cluster = failover_cluster
    started = time.monotonic()
    seed = SEED + (5 if policy == "fail-open" else 6)
    posts = make_posts(FAULT_RECORDS, seed)
    wave = recovery_wave(f"cl-{policy}")
    expected_alerts, expected_dead = expected_outcomes(posts + wave, tmp_path)
    t = topics_for(kafka, f"cf-{policy}")
    group = unique_name(f"cf-{policy}")
    args = worker_args(kafka, group, t, cluster.url)
    args += ["-X", "redis_timeout_ms=300", "-X", f"dedup.on_unavailable={policy}"]
    w = workers.start(args, name=f"cf-{policy}")
    wait_until(lambda: assigned(w), scaled(60), "the worker to be assigned", proc=w)
    producer = PacedProducer(kafka, t.input, posts, seconds=11.0)
    producer.start()
    time.sleep(2.0)
    masters = sorted(cluster.shards())
    t0 = time.monotonic()
    promoted = cluster.failover_gracefully(masters[0])
    graceful_s = time.monotonic() - t0
    time.sleep(1.5)
    t0 = time.monotonic()
    cluster.kill_master(masters[1])
    elected_s = time.monotonic() - t0
    producer.join(timeout=scaled(120))
    assert producer.done.is_set() and not producer.errors, producer.errors[:5]
    wait_committed_to_end(kafka, group, t.input, timeout=60, proc=w)
    kafka.produce(t.input, wave)
    wait_committed_to_end(kafka, group, t.input, timeout=60, proc=w)
    assert w.poll() is None, w.describe()
    assert workers.stop(w) == 0, w.describe()
    figures = check_outputs(kafka, t, expected_alerts, expected_dead)
    figures.update(policy=policy, records=len(posts) + len(wave), seed=seed,
                   graceful_failover_s=round(graceful_s, 1),
                   replica_elected_after_kill_s=round(elected_s, 1),
                   redis_warnings_logged=sum(r.get("level") in ("warn", "error") and
                                             "redis" in r.get("msg", "")
                                             for r in w.log_records()),
                   wall_s=round(time.monotonic() - started, 1))
    not_clustered, figures["recovery_wave_max_count"] = wave_not_clustered(kafka, t, wave)
    report(f"cluster-failover-{policy}", figures)
    assert promoted in cluster.shards()
    assert "duplicate store redis-cluster" in w.stderr_text(), w.describe()
    for key in ("lost", "unexpected", "dead_letters_lost", "dead_letters_unexpected"):
        assert not figures[key], f"{key}: {figures[key]} ({figures})"
    assert not not_clustered, f"recovery wave not clustered: {not_clustered}\n{w.describe()}"
