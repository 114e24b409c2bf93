#!/usr/bin/env python3
"""Near-duplicate evaluation of tidewatch's fingerprints and duplicate store, side by side with
a reference MinHash LSH (datasketch) on the same posts, the same shingles and the same banding.

Data: real posts from ../shared/data/posts (override with --data), plus generated
near-duplicate variants of some of them (word swaps, insertions, deletions, URL and mention
changes, emoji, case and punctuation noise). Every post is fed, in one shuffled stream, to
`tidewatch scan --emit all`, which prints each post's cluster and the canonical text its
fingerprint was taken of.

Ground truth: the exact Jaccard similarity of the posts' shingle sets, built from that
canonical text the way common/fingerprint/fingerprint.c builds them (word unigrams + bigrams, character
3-grams for scripts written without spaces). All pairs with Jaccard >= 0.5 are found exactly
(prefix-filtering similarity join), so recall is measured against every true pair, not only
the generated ones.

Measures, for tidewatch and for datasketch (MinHash of the same shingle sets, MinHashLSH with
the same 20 bands x 5 rows, and the same online clustering rule as the store: join the cluster
of the exact text, else of an earlier post sharing a band, else start one):
  recall(J in bucket) = true pairs in that Jaccard bucket that ended in one cluster / all;
  precision = same-cluster pairs that are truly near-duplicates (generated from the same
    original, or exact Jaccard >= 0.5) / all same-cluster pairs.
datasketch's raw LSH candidate pairs (no clustering) are reported too.

usage: perf/neardup_eval.py [--tidewatch build/tidewatch] [--bases 1500] [--variants 4]
                            [--distractors 20000] [--seed 7] [--out perf/results/X.json]
Exits 0 with a SKIP line when the data set or datasketch is missing.
"""

import argparse
import collections
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path(os.environ.get("TW_SHARED_DATA", ROOT.parent / "shared" / "data"))
BANDS, ROWS = 20, 5
BUCKETS = [(0.5, 0.6), (0.6, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.0001)]


def skip(msg):
    print(f"SKIP: {msg}")
    sys.exit(0)


# ---------------------------------------------------------------------------------------
# data and variants

EMOJI = ["🔥", "😂", "👉", "💰", "✅", "🚀", "❤️", "🎁", "😍", "👍"]
FILLER = ["really", "just", "now", "today", "omg", "lol", "please", "guys", "so", "very",
          "totally", "new", "free", "check", "wow", "this", "here", "again"]


def load_posts(data_dir, rng, need):
    files = sorted((data_dir / "posts").glob("*.jsonl"))
    if not files:
        skip(f"no posts in {data_dir / 'posts'} (the shared data set is absent)")
    texts = []
    for f in files:
        with open(f, encoding="utf-8") as fh:
            for line in fh:
                try:
                    t = json.loads(line).get("text")
                except ValueError:
                    continue
                if isinstance(t, str) and t.strip():
                    texts.append(t)
    rng.shuffle(texts)
    return texts[:need]


def perturb(text, rng, vocab):
    words = text.split()
    ops = rng.sample(["swap", "insert", "delete", "url", "mention", "emoji", "case", "punct"],
                     rng.randint(1, 3))
    for op in ops:
        if op == "swap" and len(words) > 2:
            i = rng.randrange(len(words) - 1)
            words[i], words[i + 1] = words[i + 1], words[i]
        elif op == "insert":
            words.insert(rng.randint(0, len(words)), rng.choice(vocab))
        elif op == "delete" and len(words) > 4:
            del words[rng.randrange(len(words))]
        elif op == "url":
            slug = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(8))
            words.append(rng.choice(["https://bit.ly/", "http://t.co/", "https://x.example/p/"])
                         + slug)
        elif op == "mention":
            words.insert(rng.randint(0, len(words)), "@user" + str(rng.randint(1, 99999)))
        elif op == "emoji":
            words.insert(rng.randint(0, len(words)), rng.choice(EMOJI) * rng.randint(1, 3))
        elif op == "case":
            words = [w.upper() if rng.random() < 0.3 else w for w in words]
        elif op == "punct":
            words = [w + rng.choice(["!", "!!!", ",", "...", "?"]) if rng.random() < 0.3 else w
                     for w in words]
    return " ".join(words)


def build_stream(texts, args, rng):
    """[(post_id, author, text, group)] shuffled; group = base index for originals and their
    variants, None for distractors."""
    bases = [t for t in texts if len(t.split()) >= 8][: args.bases]
    used = set(bases)
    distractors = [t for t in texts if t not in used][: args.distractors]
    vocab = sorted({w for t in texts[:5000] for w in t.split() if w.isalpha()}) + FILLER
    stream = []
    for i, t in enumerate(bases):
        stream.append((f"b{i}", f"a{rng.randint(0, 10**6)}", t, i))
        for j in range(args.variants):
            stream.append((f"b{i}v{j}", f"a{rng.randint(0, 10**6)}", perturb(t, rng, vocab), i))
    for k, t in enumerate(distractors):
        stream.append((f"d{k}", f"a{rng.randint(0, 10**6)}", t, None))
    rng.shuffle(stream)
    return stream


# ---------------------------------------------------------------------------------------
# shingles, as common/fingerprint/fingerprint.c builds them from the canonical text


def unspaced(ch):
    """fp_cp_is_unspaced() of common/fingerprint/fingerprint.c."""
    cp = ord(ch)
    return (0x0E00 <= cp <= 0x0EFF or 0x1000 <= cp <= 0x109F or 0x1780 <= cp <= 0x17FF
            or 0x2E80 <= cp <= 0x2FDF or 0x3005 <= cp <= 0x3007 or 0x3040 <= cp <= 0x312F
            or 0x31A0 <= cp <= 0x31FF or 0x3400 <= cp <= 0x4DBF or 0x4E00 <= cp <= 0x9FFF
            or 0xF900 <= cp <= 0xFAFF or 0x20000 <= cp <= 0x3FFFF)


def shingles(canonical):
    out = []
    prev = None
    for tok in canonical.split(" ") if canonical else []:
        runs, run = [], ""
        for ch in tok:
            if unspaced(ch):
                run += ch
            else:
                if len(run) >= 3:
                    runs.append(run)
                run = ""
        if len(run) >= 3:
            runs.append(run)
        if runs:
            for r in runs:
                out.extend("t:" + r[k:k + 3] for k in range(len(r) - 2))
            prev = None
            continue
        out.append("u:" + tok)
        if prev is not None:
            out.append("b:" + prev + " " + tok)
        prev = tok
    return out


def jaccard(a, b):
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def similar_pairs(sets, threshold):
    """Every pair (i, j), i < j, with Jaccard >= threshold: prefix filtering over tokens in
    increasing global frequency, then exact verification."""
    freq = collections.Counter(t for s in sets for t in s)
    order = [sorted(s, key=lambda t: (freq[t], t)) for s in sets]
    index = collections.defaultdict(list)
    out = {}
    for i, toks in enumerate(order):
        if not toks:
            continue
        prefix = max(1, min(len(toks), len(toks) - int(-(-threshold * len(toks) // 1)) + 1))
        cands = set()
        for t in toks[:prefix]:
            cands.update(index[t])
            index[t].append(i)
        for j in cands:
            lo, hi = sorted((len(sets[i]), len(sets[j])))
            if lo < threshold * hi:
                continue
            jac = jaccard(sets[i], sets[j])
            if jac >= threshold:
                out[(min(i, j), max(i, j))] = jac
    return out


# ---------------------------------------------------------------------------------------
# the systems


def run_tidewatch(binary, stream, rules, extra):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as f:
        for pid, author, text, _ in stream:
            f.write(json.dumps({"id": pid, "author": author, "text": text, "ts": 1700000000})
                    + "\n")
        path = f.name
    try:
        t0 = time.monotonic()
        proc = subprocess.run([str(binary), "scan", "--rules", str(rules), "--emit", "all",
                               "-X", "log_level=warn"] + [a for x in extra for a in ("-X", x)]
                              + [path],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        secs = time.monotonic() - t0
    finally:
        os.unlink(path)
    if proc.returncode != 0:
        sys.exit(f"tidewatch scan failed ({proc.returncode}):\n{proc.stderr.decode()[-2000:]}")
    recs = {}
    for line in proc.stdout.decode("utf-8").splitlines():
        obj = json.loads(line)
        if "post_id" in obj and "canonical" in obj:
            recs[obj["post_id"]] = obj
    return recs, secs


def cluster_pairs(labels):
    groups = collections.defaultdict(list)
    for i, c in enumerate(labels):
        if c is not None:
            groups[c].append(i)
    pairs = set()
    for members in groups.values():
        pairs.update(itertools.combinations(sorted(members), 2))
    return pairs, groups


def run_datasketch(shingle_lists, canon):
    from datasketch import MinHash, MinHashLSH

    t0 = time.monotonic()
    lsh = MinHashLSH(num_perm=BANDS * ROWS, params=(BANDS, ROWS))
    labels, exact_cluster, raw_pairs = [], {}, set()
    for i, sh in enumerate(shingle_lists):
        if not canon[i]:
            labels.append(None)
            continue
        if len(sh) < 3:  # tidewatch signs nothing below 3 shingles: exact match only
            labels.append(exact_cluster.setdefault(canon[i], i))
            continue
        m = MinHash(num_perm=BANDS * ROWS, seed=1)
        m.update_batch([s.encode("utf-8") for s in set(sh)])
        cands = lsh.query(m)
        raw_pairs.update((min(i, j), max(i, j)) for j in cands)
        if canon[i] in exact_cluster:
            label = exact_cluster[canon[i]]
        elif cands:
            label = labels[min(cands)]
        else:
            label = i
        exact_cluster.setdefault(canon[i], label)
        labels.append(label)
        lsh.insert(i, m)
    return labels, raw_pairs, time.monotonic() - t0


# ---------------------------------------------------------------------------------------
# scoring


def score(pred_pairs, truth, groups_of, sets, name):
    rec = {}
    for lo, hi in BUCKETS:
        want = [p for p, j in truth.items() if lo <= j < hi]
        got = sum(1 for p in want if p in pred_pairs)
        rec[f"{lo:.1f}-{min(hi, 1.0):.1f}"] = {"pairs": len(want), "found": got,
                                                "recall": round(got / len(want), 4) if want else None}
    hi_pairs = [p for p, j in truth.items() if j >= 0.8]
    recall80 = sum(1 for p in hi_pairs if p in pred_pairs) / max(1, len(hi_pairs))
    correct = 0
    wrong_examples = []
    for i, j in pred_pairs:
        same_group = groups_of[i] is not None and groups_of[i] == groups_of[j]
        if same_group or (i, j) in truth:
            correct += 1
        elif len(wrong_examples) < 5:
            wrong_examples.append([i, j, round(jaccard(sets[i], sets[j]), 3)])
    precision = correct / len(pred_pairs) if pred_pairs else 1.0
    return {"system": name, "recall_by_jaccard": rec, "recall_jaccard_ge_0.8": round(recall80, 4),
            "predicted_pairs": len(pred_pairs), "correct_pairs": correct,
            "precision": round(precision, 4), "false_pair_examples": wrong_examples}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tidewatch", default=str(ROOT / "build" / "tidewatch"))
    ap.add_argument("--rules", default=str(ROOT / "examples" / "rules.yaml"))
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--bases", type=int, default=1500)
    ap.add_argument("--variants", type=int, default=4)
    ap.add_argument("--distractors", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default="")
    ap.add_argument("-X", dest="tw_args", action="append", default=[],
                    help="key=value passed to tidewatch scan (e.g. dedup.verify_pct=0)")
    args = ap.parse_args()

    try:
        import datasketch  # noqa: F401
    except ImportError:
        skip("python package datasketch is not installed (pip install -r perf/requirements.txt)")
    data_dir = Path(args.data)
    if not (data_dir / "posts").is_dir():
        skip(f"{data_dir / 'posts'} is absent (the shared data set is not on this machine)")
    if not Path(args.tidewatch).is_file():
        sys.exit(f"tidewatch binary not found at {args.tidewatch} (build it or pass --tidewatch)")

    rng = random.Random(args.seed)
    texts = load_posts(data_dir, rng, args.bases * 4 + args.distractors * 2)
    stream = build_stream(texts, args, rng)
    recs, tw_secs = run_tidewatch(args.tidewatch, stream, args.rules, args.tw_args)
    missing = [pid for pid, *_ in stream if pid not in recs]
    if missing:
        sys.exit(f"tidewatch printed no record for {len(missing)} posts, e.g. {missing[:3]}")

    canon = [recs[pid]["canonical"] for pid, *_ in stream]
    shingle_lists = [shingles(c) for c in canon]
    sets = [set(s) for s in shingle_lists]
    groups_of = [g for *_, g in stream]
    t0 = time.monotonic()
    truth = similar_pairs(sets, 0.5)
    join_secs = time.monotonic() - t0

    tw_labels = [recs[pid]["cluster"] for pid, *_ in stream]
    tw_pairs, tw_groups = cluster_pairs(tw_labels)
    ds_labels, ds_raw, ds_secs = run_datasketch(shingle_lists, canon)
    ds_pairs, ds_groups = cluster_pairs(ds_labels)

    result = {
        "what": "near-duplicate recall/precision, tidewatch vs datasketch MinHashLSH",
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "posts": len(stream), "bases": args.bases, "variants_per_base": args.variants,
        "distractors": args.distractors, "seed": args.seed,
        "lsh": {"bands": BANDS, "rows": ROWS, "num_perm": BANDS * ROWS},
        "true_pairs_jaccard_ge_0.5": len(truth),
        "seconds": {"tidewatch_scan": round(tw_secs, 2), "datasketch": round(ds_secs, 2),
                    "exact_join": round(join_secs, 2)},
        "results": [
            score(tw_pairs, truth, groups_of, sets,
                  "tidewatch scan --emit all " + " ".join(f"-X {a}" for a in args.tw_args)),
            score(ds_pairs, truth, groups_of, sets, "datasketch MinHashLSH + same clustering"),
            score(ds_raw, truth, groups_of, sets, "datasketch MinHashLSH raw candidate pairs"),
        ],
        "largest_clusters": {"tidewatch": sorted((len(m) for m in tw_groups.values()),
                                                 reverse=True)[:5],
                             "datasketch": sorted((len(m) for m in ds_groups.values()),
                                                  reverse=True)[:5]},
    }
    for r in result["results"]:
        for ex in r["false_pair_examples"]:
            ex[0], ex[1] = canon[ex[0]][:80], canon[ex[1]][:80]
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print("\nsummary:", file=sys.stderr)
    for r in result["results"]:
        print(f"  {r['system']:45s} recall(J>=0.8) {r['recall_jaccard_ge_0.8']:.4f}  "
              f"precision {r['precision']:.4f}  pairs {r['predicted_pairs']}", file=sys.stderr)


if __name__ == "__main__":
    main()
