#!/usr/bin/env python3
"""Two builds of `tidewatch run` side by side, in one run, against one real broker and one
real redis-server: the same posts and rules, runs interleaved (A, B, A, B, ...) so a machine
whose load changes hurts both alike. For a change to the run loop (threads, batching), where
`perf/bench_fair.py` measures one build.

usage: perf/bench_run_ab.py --a build-before/tidewatch --b build/tidewatch
                            [--posts 20000] [--ruleset 10k] [--threads 2] [--repeat 2]
                            [--stores memory,redis] [--out perf/results/run-ab.json]

Per run (bench_fair.row_tidewatch_run): worker CPU per post between /readyz and the
committed offsets reaching the end, wall rate of that interval, peak RSS, Redis CPU /
commands / bytes per post, and the alert set (post, rule) pairs, which must be the same for
A and B before any ratio is read. Reported: each run, and per build and store the median
CPU per post and the best wall rate; ratios B / A.
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "perf"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import bench_fair  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", required=True, help="tidewatch binary A (the baseline)")
    ap.add_argument("--b", required=True, help="tidewatch binary B (the change)")
    ap.add_argument("--posts", type=int, default=20000)
    ap.add_argument("--ruleset", default="10k")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--stores", default="memory,redis")
    ap.add_argument("--out", default=str(ROOT / "perf" / "results" / "run-ab.json"))
    args = ap.parse_args()
    if not (bench_fair.DATA / "posts").is_dir():
        print(f"SKIP: {bench_fair.DATA} is absent; the benchmark reads real posts from it")
        return 0
    import harness

    bench_fair.ensure_rulesets([args.ruleset], args.b)
    rules = str(bench_fair.TMP / f"ruleset-{args.ruleset}" / "rules.yaml")
    posts = bench_fair.bench_posts(args.posts)
    extra = ["--threads", str(args.threads)]
    broker, redis = harness.KafkaBroker(), harness.RedisServer()
    for server in (broker, redis):
        problem = server.prerequisites()
        if problem:
            print(f"SKIP: {problem}")
            return 0
    broker.start()
    redis.start()
    runs = []
    pairs = {}
    try:
        for rep in range(args.repeat):
            for store in [s for s in args.stores.split(",") if s]:
                for label, binary in (("A", args.a), ("B", args.b)):
                    tag = f"ab-{label}-{store}-{rep}"
                    t0 = time.monotonic()
                    row, got = bench_fair.row_tidewatch_run(
                        broker, binary, rules, posts, args.posts,
                        redis if store == "redis" else None, extra, None, tag)
                    row.update({"build": label, "store": store, "repeat": rep})
                    runs.append(row)
                    pairs.setdefault((label, store), got)
                    print(f"{tag}: {row['cpu_us_per_post']:.1f} us/post, "
                          f"{row['max_rate_posts_per_s_wall']} posts/s wall, "
                          f"{time.monotonic() - t0:.0f}s", file=sys.stderr, flush=True)
    finally:
        broker.stop()
        redis.stop()
    summary = {}
    for store in [s for s in args.stores.split(",") if s]:
        per = {}
        for label in ("A", "B"):
            mine = [r for r in runs if r["build"] == label and r["store"] == store]
            per[label] = {
                "cpu_us_per_post_median": round(
                    statistics.median(r["cpu_us_per_post"] for r in mine), 2),
                "rate_posts_per_s_best": max(r["max_rate_posts_per_s_wall"] for r in mine),
                "alerts": mine[0]["alerts"],
            }
            if store == "redis":
                per[label]["redis_cpu_us_per_post_median"] = round(statistics.median(
                    r.get("redis_cpu_us_per_post", 0) for r in mine), 1)
        per["same_alerts"] = pairs[("A", store)] == pairs[("B", store)]
        per["cpu_ratio_b_over_a"] = round(
            per["B"]["cpu_us_per_post_median"] / per["A"]["cpu_us_per_post_median"], 3)
        per["rate_ratio_b_over_a"] = round(
            per["B"]["rate_posts_per_s_best"] / per["A"]["rate_posts_per_s_best"], 3)
        summary[store] = per
    res = {"posts": args.posts, "ruleset": args.ruleset, "threads": args.threads,
           "repeat": args.repeat, "machine": bench_fair.machine(), "summary": summary,
           "runs": runs}
    text = bench_fair.scrub(json.dumps(res, indent=1))
    Path(args.out).write_text(text + "\n")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
