#!/usr/bin/env python3
"""Rule-set scale benchmark: compile time, cached start-up and scan throughput for 1k, 10k and
50k real patterns.

usage: perf/bench_rules.py [--bin build/tidewatch] [--data ../shared/data]
                           [--tiers 1000,10000,50000] [--posts 50000]
                           [--out perf/results/rules-2cpu.json]

Patterns (real, public, ../shared/data/patterns): every word of profanity_wash_54lang.tsv
(54 languages, up to a quarter of a tier) and domains sampled from
phishing_domains_blocklistproject.txt for the rest, as keywords, five per rule, plus the first
100 SpamAssassin body regexes; default views (folded + skeleton), and a `squash` variant of
the 10k tier, and a `folded`-only variant of it (views: [folded]: the cost of the skeleton).
For each tier:
  compile_s     `tidewatch rules check` with an empty cache directory (parse + compile + store)
  cached_s      the same command again: the database comes from the cache
  scan          `tidewatch rules test` over the first --posts lines of posts_mixed.txt: the
                time it reports covers JSON decode + normalize + every view's Hyperscan scan
                (no duplicate store), as posts/s and MB/s
Skips cleanly (exit 0, saying so) when the data is absent.
"""
import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time


def run(cmd, env):
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return time.monotonic() - t0, p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/tidewatch")
    ap.add_argument("--data", default=os.environ.get("TW_SHARED_DATA", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data")))
    ap.add_argument("--tiers", default="1000,10000,50000")
    ap.add_argument("--posts", type=int, default=50000)
    ap.add_argument("--out", default="perf/results/rules-2cpu.json")
    args = ap.parse_args()
    pat = os.path.join(args.data, "patterns")
    need = [os.path.join(pat, f) for f in ("profanity_wash_54lang.tsv",
                                           "phishing_domains_blocklistproject.txt",
                                           "regex_spamassassin_apache2_pcre.hs_ok.txt")]
    posts_src = os.path.join(args.data, "posts", "posts_mixed.txt")
    if not all(os.path.exists(p) for p in need + [posts_src]):
        print("bench_rules: skipped: shared data not found under %s" % args.data)
        return 0
    words = []
    for line in open(need[0], encoding="utf-8"):
        w = line.rstrip("\n").partition("\t")[2].strip()
        if w:
            words.append(w)
    words = sorted(set(words))
    domains = [l.strip() for l in open(need[1], encoding="utf-8") if l.strip()]
    rng = random.Random(7)
    rng.shuffle(domains)
    regexes = []
    for line in open(need[2], encoding="utf-8"):
        m = re.match(r"^\d+:/(.*)/([ims]*)$", line.rstrip("\n"))
        if m and m.group(1) not in (".",):
            regexes.append(m.group(1))
        if len(regexes) == 100:
            break
    tmp = tempfile.mkdtemp(prefix="tw-bench-rules-")
    posts = os.path.join(tmp, "posts.jsonl")
    nbytes = 0
    with open(posts_src, encoding="utf-8") as src, open(posts, "w") as f:
        for i, line in enumerate(src):
            if i >= args.posts:
                break
            t = line.rstrip("\n")
            nbytes += len(t.encode())
            f.write(json.dumps({"id": str(i), "text": t}) + "\n")
    results = {"cpus": os.cpu_count(), "posts": args.posts, "post_bytes": nbytes,
               "command": " ".join(sys.argv), "tiers": []}
    tiers = [(int(t), "") for t in args.tiers.split(",")]
    if any(n == 10000 for n, _ in tiers):
        tiers += [(10000, "folded"), (10000, "squash")]
    for n, variant in tiers:
        kws = words[: n // 4] + domains[: n - min(len(words), n // 4)]
        rules = os.path.join(tmp, "rules_%d%s.yaml" % (n, variant))
        with open(rules, "w") as f:
            f.write("rules:\n")
            for r in range(0, len(kws), 5):
                f.write("  - id: kw%d\n    category: bench\n" % r)
                if variant == "squash":
                    f.write("    squash: true\n")
                elif variant == "folded":
                    f.write("    views: [folded]\n")
                f.write("    keywords: %s\n" % json.dumps(kws[r:r + 5], ensure_ascii=False))
            for i, rx in enumerate(regexes):
                f.write("  - id: re%d\n    category: bench\n    regex: ['%s']\n"
                        % (i, rx.replace("'", "''")))
        env = dict(os.environ, XDG_CACHE_HOME=os.path.join(tmp, "cache%d%s" % (n, variant)),
                   TIDEWATCH_LOG_LEVEL="error")
        wall1, p1 = run([args.bin, "rules", "check", rules], env)
        if p1.returncode != 0:
            print(p1.stderr[-2000:])
            return 1
        wall2, p2 = run([args.bin, "rules", "check", rules], env)
        m = re.search(r"per view: folded (\d+), skeleton (\d+), squash (\d+)", p1.stdout)
        db = re.search(r"database (\d+) bytes", p1.stdout)
        _, p3 = run([args.bin, "rules", "test", rules, posts], env)
        sm = re.search(r"(\d+) posts .*?(\d+) with hits, scanned in ([\d.]+) s", p3.stdout)
        scan_s = float(sm.group(3))
        row = {"patterns": len(kws) + len(regexes), "keywords": len(kws), "regexes": len(regexes),
               "variant": variant or "default",
               "expressions_per_view": [int(x) for x in m.groups()] if m else None,
               "database_bytes": int(db.group(1)) if db else None,
               "compile_s": round(wall1, 3), "cached_s": round(wall2, 3),
               "cache_hit": "from the cache" in p2.stdout,
               "posts_with_hits": int(sm.group(2)), "scan_s": scan_s,
               "posts_per_s": round(args.posts / scan_s), "mb_per_s": round(nbytes / scan_s / 1e6, 2)}
        results["tiers"].append(row)
        print(json.dumps(row))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
