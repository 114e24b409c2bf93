#!/usr/bin/env python3
"""Redis commands and CPU per post of the duplicate store, side by side with the memory store.

Starts a real redis-server (and, with --cluster, three redis-servers in cluster mode joined by
`redis-cli --cluster create`) on free loopback ports, runs perf/bench_dedup (built by CMake:
BUILD/perf/bench_dedup) over N real posts' fingerprints in batches of 500 against the memory
store and each Redis store, and reports posts/s plus, per post, the Redis calls by command
(INFO commandstats deltas: commands run inside the Lua scripts are counted too) and the
servers' CPU (INFO cpu used_cpu_sys + used_cpu_user deltas, summed over the cluster's nodes).
Also per post: the bytes the store holds in Redis (INFO memory used_memory delta over the run, from
an empty server; every post is still in its window at the end) and whether every post got the
same cluster decisions as from the memory store (bench_dedup's "decisions" hash).

With --steady, the two older epochs a lookup also reads (an epoch is half the 86,400 s window)
are first filled with N x 17 random fields each, as a worker in steady state finds them: from
an empty server their HMGETs miss at once on an absent key, which understates the lookups.
The filling happens before the first snapshot, so it counts in neither the CPU nor the bytes.

usage: perf/redis_cost.py [--bench build/perf/bench_dedup] [--n 50000] [--batch 500]
                          [--cluster] [--steady] [--out perf/results/redis-cost.json]
Exits 0 with a SKIP line when redis-server, the bench binary or the posts are missing.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port(cluster=False):
    """A free loopback port; for a cluster node also its bus port (port + 10000)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not cluster:
            return port
        if port + 10000 < 65536:
            try:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port + 10000))
                return port
            except OSError:
                pass
    raise RuntimeError("no free port pair for a cluster node")


def cli(port, *args, timeout=10, follow=False):
    """redis-cli; follow: cluster mode (-c), which follows MOVED to the key's master."""
    out = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port)] +
                         (["-c"] if follow else []) + list(args),
                         capture_output=True, text=True, timeout=timeout)
    return out.stdout


def info(port, section):
    fields = {}
    for line in cli(port, "INFO", section).splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.strip().split(":", 1)
            fields[k] = v
    return fields


def snapshot(ports):
    """Calls and microseconds per command, CPU seconds, used_memory bytes and keys, summed over
    ports."""
    calls, usec, cpu, mem, keys = {}, {}, 0.0, 0, 0
    for port in ports:
        for k, v in info(port, "commandstats").items():
            name = k[len("cmdstat_"):]
            stats = dict(kv.split("=") for kv in v.split(","))
            calls[name] = calls.get(name, 0) + int(stats["calls"])
            usec[name] = usec.get(name, 0) + int(stats["usec"])
        c = info(port, "cpu")
        cpu += float(c["used_cpu_sys"]) + float(c["used_cpu_user"])
        mem += int(info(port, "memory")["used_memory"])
        for k, v in info(port, "keyspace").items():
            keys += int(dict(kv.split("=") for kv in v.split(","))["keys"])
    return calls, usec, cpu, mem, keys


class Servers:
    """redis-server processes on free ports, cluster mode optional; stopped by close()."""

    def __init__(self, count, cluster):
        self.dir = Path(tempfile.mkdtemp(prefix="tw-redis-cost-"))
        self.procs, self.ports = [], []
        try:
            self.start(count, cluster)
        except BaseException:
            self.close()
            raise

    def start(self, count, cluster):
        for i in range(count):
            port = free_port(cluster)
            d = self.dir / str(i)
            d.mkdir()
            args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", str(d), "--logfile", str(d / "log")]
            if cluster:
                args += ["--cluster-enabled", "yes", "--cluster-config-file", str(d / "nodes.conf")]
            self.procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                               stderr=subprocess.STDOUT))
            self.ports.append(port)
        for port in self.ports:
            self.wait(lambda p=port: cli(p, "PING").strip() == "PONG", "PING")
        if cluster:
            subprocess.run(["redis-cli", "--cluster", "create"] +
                           [f"127.0.0.1:{p}" for p in self.ports] + ["--cluster-yes"],
                           capture_output=True, check=True, timeout=60)
            for port in self.ports:
                self.wait(lambda p=port: "cluster_state:ok" in cli(p, "CLUSTER", "INFO"),
                          "cluster_state:ok")

    @staticmethod
    def wait(pred, what, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if pred():
                    return
            except (OSError, subprocess.SubprocessError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"redis: timed out waiting for {what}")

    def close(self):
        for p in self.procs:
            p.kill()
            p.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def run_bench(bench, store, n, batch):
    out = subprocess.run([str(bench), "--n", str(n), "--batch", str(batch), "--store", store],
                         capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"bench_dedup {store} failed:\n{out.stderr}")
    line = out.stdout.strip().splitlines()[-1]
    if line.startswith("SKIP"):
        print(line)
        sys.exit(0)
    return json.loads(line)


WINDOW_S = 86400  # bench_dedup's window (the default dedup.window_s)
EPOCH_S = WINDOW_S // 2  # the stores' epoch (dedup_redis_epoch_s)
SHARDS = 256  # DEDUP_CLUSTER_INDEX_SHARDS
# fills KEYS[1] with ARGV[1] random 8-byte fields whose values are random 8-byte ids, in HSETs
# of 1,000 fields (the stores' own fields are hashes: these are as random)
FILL_LUA = """
math.randomseed(tonumber(ARGV[2]))
local function rnd8()
  local b = {}
  for i = 1, 8 do b[i] = math.random(0, 255) end
  return string.char(unpack(b))
end
local args, left = {}, tonumber(ARGV[1])
while left > 0 do
  args[#args + 1] = rnd8()
  args[#args + 1] = rnd8()
  left = left - 1
  if #args == 2000 or left == 0 then
    redis.call('HSET', KEYS[1], unpack(args))
    args = {}
  end
end
return 0
"""


def fill_older_epochs(servers, cluster, fields):
    """The two older live epochs, as a worker in steady state finds them (see --steady)."""
    now = int(cli(servers.ports[0], "TIME").split()[0])
    cur = now // EPOCH_S
    keys = []
    for e in (cur - 1, cur - 2):
        if cluster:
            keys += [(f"tw:i:{e}:{{{shard}}}", fields // SHARDS) for shard in range(SHARDS)]
        else:
            keys.append((f"tw:i:{e}", fields))
    port = servers.ports[0]
    for seed, (key, count) in enumerate(keys, 1):
        cli(port, "EVAL", FILL_LUA, "1", key, str(count), str(seed), timeout=600, follow=True)
        cli(port, "EXPIREAT", key, str((int(key.split(":")[2]) + 1) * EPOCH_S + WINDOW_S),
            follow=True)


def measure(bench, servers, url, n, batch, cluster=False, steady=False):
    for port in servers.ports:
        cli(port, "FLUSHALL")
        cli(port, "SCRIPT", "FLUSH")
    if steady:
        fill_older_epochs(servers, cluster, n * 17)
    for port in servers.ports:
        cli(port, "CONFIG", "RESETSTAT")
    calls0, usec0, cpu0, mem0, _ = snapshot(servers.ports)
    res = run_bench(bench, url, n, batch)
    calls1, usec1, cpu1, mem1, keys1 = snapshot(servers.ports)
    posts = res["posts"]
    per_cmd = {k: round((calls1.get(k, 0) - calls0.get(k, 0)) / posts, 3)
               for k in sorted(set(calls1) | set(calls0))}
    per_cmd = {k: v for k, v in per_cmd.items()
               if v and k not in ("info", "config|resetstat", "flushall", "script|flush")}
    res["calls_per_post"] = dict(sorted(per_cmd.items(), key=lambda kv: -kv[1]))
    res["calls_per_post_total"] = round(sum(v for k, v in per_cmd.items()
                                            if k not in ("evalsha", "eval")), 2)
    usec = {k: round((usec1.get(k, 0) - usec0.get(k, 0)) / posts, 2) for k in per_cmd}
    res["usec_per_post"] = dict(sorted(usec.items(), key=lambda kv: -kv[1]))
    res["redis_cpu_us_per_post"] = round((cpu1 - cpu0) * 1e6 / posts, 2)
    # every post is still inside the window (86,400 s) when the run ends: this is what a post
    # holds in Redis for its window
    res["redis_bytes_per_post"] = round((mem1 - mem0) / posts, 1)
    res["redis_keys"] = keys1
    res["nodes"] = len(servers.ports)
    res["older_epochs_filled"] = n * 17 if steady else 0
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", default=str(ROOT / "build" / "perf" / "bench_dedup"))
    ap.add_argument("--n", type=int, default=50000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--cluster", action="store_true", help="also a 3-node Redis Cluster")
    ap.add_argument("--steady", action="store_true",
                    help="fill the two older live epochs first (steady-state lookups)")
    ap.add_argument("--out")
    args = ap.parse_args()
    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        print("SKIP: redis-server / redis-cli not installed")
        return 0
    if not Path(args.bench).exists():
        print(f"SKIP: {args.bench} not built")
        return 0

    results = [run_bench(args.bench, "memory", args.n, args.batch)]
    s = Servers(1, cluster=False)
    try:
        results.append(measure(args.bench, s, f"redis://127.0.0.1:{s.ports[0]}/0", args.n,
                               args.batch, steady=args.steady))
    finally:
        s.close()
    if args.cluster:
        s = Servers(3, cluster=True)
        try:
            url = "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in s.ports)
            results.append(measure(args.bench, s, url, args.n, args.batch, cluster=True,
                                   steady=args.steady))
        finally:
            s.close()
    for r in results[1:]:
        # null when the bench binary is older than its "decisions" hash
        r["same_decisions_as_memory"] = (r["decisions"] == results[0]["decisions"]
                                         if "decisions" in r and "decisions" in results[0]
                                         else None)
    report = {"what": "duplicate store cost per post: Redis commands (incl. inside Lua) and "
                      "server CPU, posts/s of dedup_batch_check alone",
              "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
              "cpus": os.cpu_count(), "results": results}
    text = json.dumps(report, indent=2)
    print(text)
    for r in results[1:]:
        print(f"{r['store']}: {r['calls_per_post_total']} commands/post (incl. inside scripts), "
              f"{r['redis_cpu_us_per_post']} us Redis CPU/post, {r['redis_bytes_per_post']} "
              f"bytes/post, {r['posts_per_s']} posts/s, same decisions as memory: "
              f"{r['same_decisions_as_memory']}", file=sys.stderr)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
