"""The Redis duplicate store on a real three-master Redis Cluster (redis+cluster://): two
workers of one consumer group decide campaign milestones once for the fleet, and duplicate
counts cross partitions, exactly as with a single redis-server (test_dedup_fleet.py).
Parity of every semantic detail with the memory store, MOVED and ASK are covered by
tests/unit/test_dedup.c."""

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from harness import (RedisClient, RedisError, missing_prerequisite, scaled, tail, unique_name,
                     wait_until)
from test_dedup_fleet import args_for, assigned, post, topics_for

NODES = 3


def cluster_port():
    """A free loopback port whose cluster bus port (port + 10000) is free too."""
    import socket
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10000 >= 65536:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            pass
    raise RuntimeError("no free port pair for a cluster node")


class RedisCluster:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="tw-redis-cluster-"))
        self.ports, self.procs = [], []

    def start(self):
        for _ in range(NODES):
            port = cluster_port()
            self.ports.append(port)
            self.procs.append(subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--cluster-enabled", "yes", "--cluster-config-file",
                 str(self.dir / f"nodes-{port}.conf"), "--dir", str(self.dir),
                 "--logfile", str(self.dir / f"redis-{port}.log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True))
        for port in self.ports:
            wait_until(lambda p=port: self.command(p, "PING") == "PONG", scaled(20),
                       lambda p=port: "redis-server\n" + tail(self.dir / f"redis-{p}.log"))
        out = subprocess.run(["redis-cli", "--cluster", "create"] +
                             [f"127.0.0.1:{p}" for p in self.ports] + ["--cluster-yes"],
                             capture_output=True, text=True, timeout=scaled(60))
        assert out.returncode == 0, out.stdout + out.stderr

        def ready():
            return all(b"cluster_state:ok" in self.command(p, "CLUSTER", "INFO") and
                       len(self.command(p, "CLUSTER", "SLOTS")) == NODES for p in self.ports)

        wait_until(ready, scaled(30), "cluster_state:ok on every node")
        return self

    @staticmethod
    def command(port, *args):
        with RedisClient("127.0.0.1", port) as c:
            return c.command(*args)

    @property
    def url(self):
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports[:2])

    def keys(self):
        return sum(self.command(p, "DBSIZE") for p in self.ports)

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def redis_cluster(redis):  # `redis` only to skip (or fail in CI) where redis-server is missing
    if not shutil.which("redis-cli"):
        missing_prerequisite("redis-cli not found (scripts/install-deps.sh installs it)")
    cluster = RedisCluster()
    try:
        yield cluster.start()
    finally:
        cluster.close()


def test_campaign_milestones_once_on_redis_cluster(kafka, redis_cluster, workers):
    t = topics_for(kafka, "ccamp", partitions=4, campaign=True)
    group = unique_name("ccamp-g")
    extra = ["-X", "campaign.milestones=5,10,20", "-X", "campaign.min_authors=3"]
    w1 = workers.start(args_for(kafka, group, t, redis_cluster.url, extra), name="ccamp1")
    w2 = workers.start(args_for(kafka, group, t, redis_cluster.url, extra), name="ccamp2")
    wait_until(lambda: assigned(w1) and assigned(w2), scaled(60),
               "both workers to own partitions", proc=w1)

    words = ["today", "now", "friends", "quickly", "tonight", "again"]
    base = "get your exclusive reward card waiting for you before the deadline ends"
    posts = [post(f"c{n:02d}", f"{base} {words[n % len(words)]}", f"author{n % 7}", n % 4)
             for n in range(24)]
    # The campaign's first post alone: on Redis Cluster a batch reads its keys, then writes
    # them, in two phases (no script may span hash slots), so two workers seeing the *first*
    # posts of a campaign in the same instant can start two clusters (the documented race,
    # docs/DEDUP.md); each would then claim its own milestones. Once the cluster exists,
    # every later post joins it whichever worker sees it: that is what is tested here.
    kafka.produce(t.input, posts[:1])  # partition 0
    wait_until(lambda: kafka.committed_offsets(group, t.input).get(0, 0) >= 1,
               scaled(90), "the first post committed", interval=0.5, proc=w2)
    kafka.produce(t.input, posts[1:])
    wait_until(lambda: kafka.committed_offsets(group, t.input) == kafka.high_watermarks(t.input),
               scaled(90), "every post committed", interval=0.5, proc=w2)
    assert workers.stop(w1) == 0, w1.describe()
    assert workers.stop(w2) == 0, w2.describe()

    records = kafka.consume_all(t.campaign)
    got = sorted(r.json()["campaign"]["milestone"] for r in records)
    assert got == [5, 10, 20], [r.value for r in records]
    assert len({r.json()["campaign"]["cluster"] for r in records}) == 1
    for r in records:
        c = r.json()["campaign"]
        assert c["count"] >= c["milestone"] and c["authors"] >= 3, c
    for w in (w1, w2):  # the cluster store was used, and never failed
        assert "duplicate store redis-cluster" in w.stderr_text(), w.describe()
        problems = [r for r in w.log_records() if r.get("level") in ("warn", "error") and
                    "redis" in r.get("msg", "")]
        assert not problems, problems
    assert redis_cluster.keys() > 0
    # the state really is sharded: the keys the workers wrote sit on more than one master
    per_node = [RedisCluster.command(p, "DBSIZE") for p in redis_cluster.ports]
    assert sum(1 for n in per_node if n > 0) >= 2, per_node
