#!/usr/bin/env python3
"""Per-post CPU of `tidewatch scan` for two or more builds, side by side in one run.

  perf/bench_cpu_ab.py [--posts 40000] [--ruleset 10k] [--reps 5] [--threads 1]
                       BUILD_DIR [BUILD_DIR ...]

The measurement of bench_fair.py's `tidewatch scan` row (same --threads), (CPU of N posts -
CPU of 50 posts) / (N - 50), for each build directory, the builds taking turns within each
repetition so that the load of a shared machine falls on all of them alike. Prints, per
build, the best and the median of the repetitions in µs/post. Reads the posts and rule set
bench_fair.py writes under perf/results/tmp (run bench_fair.py, or perf/build_ruleset.py,
first).
"""

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fair import run_rusage, tidewatch_extra_args  # noqa: E402
from fair_data import TMP, bench_posts, write_posts  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("builds", nargs="+", help="build directories holding tidewatch")
    ap.add_argument("--posts", type=int, default=40000)
    ap.add_argument("--ruleset", default="10k")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="as bench_fair.py's --threads")
    args = ap.parse_args()
    rules = TMP / f"ruleset-{args.ruleset}" / "rules.yaml"
    if not rules.exists():
        print(f"SKIP: {rules} is absent (run perf/bench_fair.py or perf/build_ruleset.py)")
        return 0
    n = args.posts
    posts_file = TMP / f"posts-{n}.jsonl"
    small_file = TMP / "posts-50.jsonl"
    if not posts_file.exists() or not small_file.exists():
        posts = bench_posts(n)
        write_posts(posts_file, posts)
        write_posts(small_file, posts[:50])
    cmds = {}
    for b in args.builds:
        binary = str(Path(b) / "tidewatch")
        cmds[b] = [binary, "scan", "--rules", str(rules)] + tidewatch_extra_args(binary,
                                                                                 args.threads)
    for cmd in cmds.values():
        run_rusage(cmd + [str(small_file)])  # compiles once into the cache
    per_post = {b: [] for b in args.builds}
    for _ in range(args.reps):
        for b, cmd in cmds.items():
            small = run_rusage(cmd + [str(small_file)])[0]
            full = run_rusage(cmd + [str(posts_file)])[0]
            per_post[b].append((full - small) / (n - 50) * 1e6)
    print(f"tidewatch scan, {n} posts, rule set {args.ruleset}, {args.reps} repetitions "
          "(CPU µs/post)")
    for b, xs in per_post.items():
        print(f"  {b}: best {min(xs):.2f}  median {statistics.median(xs):.2f}  "
              f"all {' '.join(f'{x:.2f}' for x in xs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
