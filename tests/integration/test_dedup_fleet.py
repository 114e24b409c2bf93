"""Fleet-wide duplicate state through a real redis-server: campaign milestones decided once for
two workers of one consumer group, Redis AUTH (password and ACL user), and the pause policy
when Redis dies mid-stream and comes back."""

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness import (RedisClient, RedisError, free_port, scaled, tail, unique_name, wait_until)

RULES = Path(__file__).resolve().parent.parent / "fixtures" / "integration" / "rules.yaml"
SPAM = "please click here for the newsletter"  # hits spam.promo in the fixture rules


def topics_for(kafka, prefix, partitions=3, campaign=False):
    t = SimpleNamespace(input=unique_name(f"{prefix}-posts"), alerts=unique_name(f"{prefix}-al"),
                        dlq=unique_name(f"{prefix}-dlq"),
                        campaign=unique_name(f"{prefix}-camp") if campaign else None)
    kafka.create_topics([n for n in vars(t).values() if n], partitions=partitions)
    return t


def args_for(kafka, group, t, redis_url, extra=()):
    args = ["run", "--brokers", kafka.bootstrap, "--group", group, "--input-topic", t.input,
            "--output-topic", t.alerts, "--dlq-topic", t.dlq, "--rules", str(RULES),
            "--redis", redis_url, "-X", "batch_timeout_ms=50"]
    if t.campaign:
        args += ["-X", f"campaign.topic={t.campaign}"]
    return args + list(extra)


def post(pid, text, author, partition):
    return (pid, json.dumps({"id": pid, "text": text, "author": author, "ts": 1732780800}),
            partition)


class OwnRedis:
    """A redis-server with extra arguments on a fixed port, restartable (no persistence)."""

    def __init__(self, *extra):
        self.extra = list(extra)
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="tw-redis-own-"))
        self.proc = None

    def start(self, password=None):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir), "--logfile",
             str(self.dir / "redis.log")] + self.extra,
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)

        def ready():
            with RedisClient("127.0.0.1", self.port) as c:
                if password:
                    c.command("AUTH", password)
                return c.command("PING") == "PONG"

        wait_until(ready, scaled(20), lambda: "redis-server\n" + tail(self.dir / "redis.log"))
        return self

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None

    def close(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def own_redis(redis):  # `redis` only to skip (or fail in CI) where redis-server is missing
    servers = []

    def make(*extra):
        s = OwnRedis(*extra)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def assigned(worker):
    return sum(r.get("msg", "").startswith("assigned ") and not r["msg"].startswith("assigned 0")
               for r in worker.log_records())


def test_campaign_milestones_once_across_two_workers(kafka, redis_clean, workers):
    """A campaign whose posts land on every partition, consumed by two workers of one group
    sharing Redis: exactly one campaign record per milestone, on the campaign topic, keyed
    by cluster and milestone, with counts, authors and samples."""
    t = topics_for(kafka, "camp", partitions=4, campaign=True)
    group = unique_name("camp-g")
    url = redis_clean.url_for(5)
    extra = ["-X", "campaign.milestones=5,10,20", "-X", "campaign.min_authors=3"]
    w1 = workers.start(args_for(kafka, group, t, url, extra), name="camp1")
    w2 = workers.start(args_for(kafka, group, t, url, extra), name="camp2")
    wait_until(lambda: assigned(w1) and assigned(w2), scaled(60),
               "both workers to own partitions", proc=w1)

    words = ["today", "now", "friends", "quickly", "tonight", "again"]
    base = "get your exclusive reward card waiting for you before the deadline ends"
    posts = [post(f"c{n:02d}", f"{base} {words[n % len(words)]}", f"author{n % 7}", n % 4)
             for n in range(24)]
    posts += [post(f"o{n}", f"an unrelated note number {w} about the garden", "x", n % 4)
              for n, w in enumerate(["one", "two", "three", "four"])]
    kafka.produce(t.input, posts)

    def all_committed():
        return kafka.committed_offsets(group, t.input) == kafka.high_watermarks(t.input)

    wait_until(all_committed, scaled(90), "every post committed", interval=0.5, proc=w2)
    assert workers.stop(w1) == 0, w1.describe()
    assert workers.stop(w2) == 0, w2.describe()

    records = kafka.consume_all(t.campaign)
    got = sorted((r.json()["campaign"]["milestone"], r) for r in records)
    assert [m for m, _ in got] == [5, 10, 20], [r.value for r in records]
    clusters = {r.json()["campaign"]["cluster"] for _, r in got}
    assert len(clusters) == 1
    for m, r in got:
        c = r.json()["campaign"]
        assert r.key.decode() == f"campaign:{c['cluster']}:{m}"
        assert r.header("type") == "campaign"
        assert c["count"] >= m and c["authors"] >= 3, c
        assert c["first_seen"] == 1732780800 and c["last_seen"] == 1732780800
        assert 1 <= len(c["sample_post_ids"]) <= 5
        assert all(s.startswith("c") for s in c["sample_post_ids"])
    assert kafka.message_count(t.alerts) == 0  # no rule hits: no per-post alerts


TOPIC_TEXT = {"auth": "gardeners who grow roses in small city balconies",
              "acl": "railway history and the steam engines of old europe",
              "noauth": "homemade bread recipes with sourdough and rye flour"}


def _two_spam_alerts(kafka, workers, url, name):
    t = topics_for(kafka, name)
    w = workers.start(args_for(kafka, unique_name(f"{name}-g"), t, url), name=name)
    text = f"click here for {TOPIC_TEXT[name]}"  # a cluster of its own per call
    kafka.produce(t.input, [post(f"{name}-1", text, "u1", 0), post(f"{name}-2", text, "u2", 0)])
    kafka.wait_for_messages(t.alerts, 2, timeout=60, proc=w)
    assert workers.stop(w) == 0, w.describe()
    return {a["post_id"]: a for a in (r.json() for r in kafka.consume_all(t.alerts, 2))}


def test_redis_auth_password_and_acl_user(kafka, workers, own_redis):
    r = own_redis("--requirepass", "s3cret").start(password="s3cret")
    with RedisClient("127.0.0.1", r.port) as c:
        c.command("AUTH", "s3cret")
        c.command("ACL", "SETUSER", "tw", "on", ">tw-pass", "~tw:*", "+@all")

    alerts = _two_spam_alerts(kafka, workers, f"redis://:s3cret@127.0.0.1:{r.port}/0", "auth")
    assert alerts["auth-2"]["duplicate"]["count"] == 2, alerts

    alerts = _two_spam_alerts(kafka, workers, f"redis://tw:tw-pass@127.0.0.1:{r.port}/0", "acl")
    assert alerts["acl-2"]["duplicate"]["count"] == 2, alerts

    alerts = _two_spam_alerts(kafka, workers, f"redis://:wrong@127.0.0.1:{r.port}/0", "noauth")
    assert all(a["duplicate"] == {"unavailable": True} for a in alerts.values()), alerts
    with RedisClient("127.0.0.1", r.port) as c:
        c.command("AUTH", "s3cret")
        assert c.command("DBSIZE") > 0
        # the ACL user really is limited to tw:* keys: it logs in, writes tw:*, and only
        # the key outside its pattern is refused for permissions (not a failed AUTH)
        assert c.command("AUTH", "tw", "tw-pass") == "OK"
        assert c.command("SET", "tw:probe", "1") == "OK"
        with pytest.raises(RedisError, match="NOPERM"):
            c.command("SET", "other", "1")


def test_redis_killed_mid_stream_pause_policy(kafka, workers, own_redis):
    """dedup.on_unavailable=pause: while Redis is down nothing is published or committed past
    the held batch; the worker stays in its group; when Redis returns every post gets its
    alert with duplicate information and every offset is committed."""
    r = own_redis().start()
    t = topics_for(kafka, "pause")
    group = unique_name("pause-g")
    w = workers.start(args_for(kafka, group, t, f"redis://127.0.0.1:{r.port}/0",
                               ["-X", "dedup.on_unavailable=pause",
                                "-X", "redis_timeout_ms=300"]), name="pause")
    kafka.produce(t.input, [post(f"p1-{i}", SPAM, f"u{i}", i % 3) for i in range(3)])
    kafka.wait_for_messages(t.alerts, 3, timeout=60, proc=w)

    r.kill()
    kafka.produce(t.input, [post(f"p2-{i}", SPAM, f"v{i}", i % 3) for i in range(3)])
    wait_until(lambda: "pausing consumption" in w.stderr_text(), scaled(30),
               "the worker to pause", proc=w)
    assert kafka.message_count(t.alerts) == 3  # nothing published while paused
    assert w.poll() is None

    r.start()
    kafka.wait_for_messages(t.alerts, 6, timeout=60, proc=w)
    wait_until(lambda: "consumption resumed" in w.stderr_text(), scaled(10), "resume log")
    wait_until(lambda: kafka.committed_offsets(group, t.input) == kafka.high_watermarks(t.input),
               scaled(30), "every offset committed", interval=0.5, proc=w)
    assert workers.stop(w) == 0, w.describe()
    alerts = {a["post_id"]: a for a in (x.json() for x in kafka.consume_all(t.alerts, 6))}
    assert len(alerts) == 6
    for pid, a in alerts.items():
        assert a["duplicate"] != {"unavailable": True}, (pid, a)
    # the restarted Redis is empty: the second wave is one fresh cluster of three
    assert sorted(alerts[f"p2-{i}"]["duplicate"]["count"] if alerts[f"p2-{i}"]["duplicate"]
                  else 1 for i in range(3)) == [1, 2, 3]
