#!/usr/bin/env python3
"""Throughput of tidewatch, side by side with a Python peer, in one run.

  python3 perf/bench_throughput.py [--posts N] [--rules FILE] [--no-run] [--out FILE]

1. scan:  `tidewatch scan` over N real posts from ../shared/data (posts/s, median of 3),
          and perf/peer_python.py over the same posts and rules: the ratio is what counts,
          since these machines are shared and absolute times drift.
2. run:   the Kafka-mode worker end to end against a real broker (KRaft, from the test
          harness) and a real redis-server: N posts produced into a 3-partition topic, the
          worker started, timed until its committed offsets reach the end of the input.
          Reported with and without the consumer-group join.

perf/bench_fair.py supersedes this script (CPU time instead of wall time, floors and peers
doing the same work, alert sets compared). Needs a build (build/tidewatch, or TIDEWATCH_BIN) and, for `run`, what scripts/install-deps.sh
installs. Exits 0 with a SKIP line when ../shared/data is absent.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("TW_SHARED_DATA", ROOT.parent / "shared" / "data"))
POST_FILES = ["tweeteval_hate_offensive_en.jsonl", "davidson_hate_offensive_en.jsonl",
              "sms_spam_collection_en.jsonl", "umsab_sentiment_8lang.jsonl",
              "mlma_hate_en_fr_ar.jsonl", "arsarcasm_v2_ar.jsonl"]


def load_posts(n):
    lines = []
    for name in POST_FILES:
        path = DATA / "posts" / name
        with open(path, "rb") as f:
            for line in f:
                lines.append(line.rstrip(b"\n"))
                if len(lines) >= n:
                    return lines
    return lines


def timed(cmd, **kw):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    return time.perf_counter() - t0


def bench_scan(binary, rules, posts_file, n, reps=3):
    ours = [timed([binary, "scan", "--rules", rules, posts_file]) for _ in range(reps)]
    o = statistics.median(ours)
    peer_cmd = [sys.executable, str(ROOT / "perf" / "peer_python.py"), "scan", "--rules", rules,
                "--alerts", os.devnull, posts_file]
    check = subprocess.run(peer_cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if check.returncode != 0:  # e.g. a rule with `all:` or `squash:`, which the peer refuses
        return {"tidewatch_scan_posts_per_s": n / o,
                "python_peer": "refused: " + (check.stderr.strip().splitlines() or ["?"])[-1]}
    p = statistics.median([timed(peer_cmd, stdin=subprocess.DEVNULL) for _ in range(reps)])
    return {"tidewatch_scan_posts_per_s": n / o, "python_peer_posts_per_s": n / p,
            "ratio": p / o}


def bench_run(binary, rules, posts, partitions=3, use_redis=True):
    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    import harness  # noqa: E402  (the integration tests' broker and redis helpers)

    broker, redis = harness.KafkaBroker(), harness.RedisServer()
    for server in (broker, redis):
        problem = server.prerequisites()
        if problem:
            return {"skipped": problem}
    broker.start()
    redis.start()
    proc = None
    try:
        tag = "redis" if use_redis else "memory"
        topic, alerts, dlq, group = (f"bench-posts-{tag}", f"bench-alerts-{tag}",
                                     f"bench-dlq-{tag}", f"bench-{tag}")
        broker.create_topic(topic, partitions)
        broker.create_topic(alerts, partitions)
        broker.create_topic(dlq, 1)
        broker.produce(topic, [(str(i).encode(), p) for i, p in enumerate(posts)], timeout=300)
        high = broker.high_watermarks(topic)
        logdir = Path(tempfile.mkdtemp(prefix="tw-bench-"))
        t0 = time.perf_counter()
        proc = subprocess.Popen([binary, "run", "--brokers", broker.bootstrap, "--group", group,
                                 "--input-topic", topic, "--output-topic", alerts,
                                 "--dlq-topic", dlq, "--rules", rules,
                                 "-X", "batch_size=1000"]
                                + (["--redis", redis.url] if use_redis else []),
                                stderr=open(logdir / "worker.log", "wb"))
        first_commit = None
        while True:
            try:
                committed = broker.committed_offsets(group, topic)
            except harness.KafkaException:  # coordinator still loading: ask again
                time.sleep(0.2)
                continue
            if first_commit is None and any(v > 0 for v in committed.values()):
                first_commit = time.perf_counter()
            if all(committed.get(p, -1) >= h for p, h in high.items()):
                break
            if time.perf_counter() - t0 > 600 or proc.poll() is not None:
                raise RuntimeError(f"worker did not finish; see {logdir / 'worker.log'}")
            time.sleep(0.2)
        total = time.perf_counter() - t0
        proc.terminate()
        proc.wait(timeout=60)
        n = len(posts)
        return {"run_end_to_end_posts_per_s": n / total,
                "run_after_first_commit_posts_per_s":
                    n / max(total - (first_commit - t0), 1e-9) if first_commit else None,
                "seconds_total": total, "alerts": broker.message_count(alerts)}
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        broker.stop()
        redis.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--posts", type=int, default=50000)
    ap.add_argument("--rules", default=str(ROOT / "examples" / "rules.yaml"))
    ap.add_argument("--no-run", action="store_true")
    ap.add_argument("--out")
    args = ap.parse_args()
    if not (DATA / "posts").is_dir():
        print(f"SKIP: {DATA} is absent; the benchmark reads real posts from it")
        return 0
    binary = os.environ.get("TIDEWATCH_BIN", str(ROOT / "build" / "tidewatch"))
    posts = load_posts(args.posts)
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as f:
        f.write(b"\n".join(posts) + b"\n")
        posts_file = f.name
    result = {"posts": len(posts), "cpus": os.cpu_count(), "rules": args.rules}
    result["scan"] = bench_scan(binary, args.rules, posts_file, len(posts))
    if not args.no_run:
        result["run_redis"] = bench_run(binary, args.rules, posts, use_redis=True)
        result["run_memory_store"] = bench_run(binary, args.rules, posts, use_redis=False)
    os.unlink(posts_file)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
