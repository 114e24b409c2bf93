"""The posts and paths shared by perf/build_ruleset.py, perf/bench_fair.py and the peers.

The benchmark posts are real and multilingual: every post of the 8-language UMSAB sentiment
set (ar de en es fr hi it pt), the SMS spam collection (the one set with real scam and spam
text), and the multilingual HateCheck posts in those 8 languages, shuffled together with a
fixed seed and cut to N. Rules are calibrated on other posts (tweeteval_emoji_en, mlma), so
a pattern is never chosen for how it behaves on the benchmark posts themselves.
"""

import json
import os
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("TW_SHARED_DATA", ROOT.parent / "shared" / "data"))
TMP = ROOT / "perf" / "results" / "tmp"  # git-ignored (perf/.gitignore)
LANGS = ["ar", "de", "en", "es", "fr", "hi", "it", "pt"]


def _read(name, langs=None):
    out = []
    with open(DATA / "posts" / name, "rb") as f:
        for line in f:
            line = line.rstrip(b"\n")
            if not line:
                continue
            if langs is not None and json.loads(line).get("lang") not in langs:
                continue
            out.append(line)
    return out


def bench_posts(n=40000, seed=7):
    """N raw JSON lines (bytes), the same for every row of the benchmark."""
    pool = (_read("umsab_sentiment_8lang.jsonl") + _read("sms_spam_collection_en.jsonl") +
            _read("mhc_hatecheck_10lang.jsonl", set(LANGS)))
    random.Random(seed).shuffle(pool)
    if n > len(pool):
        raise SystemExit(f"only {len(pool)} benchmark posts available, asked for {n}")
    return pool[:n]


def calibration_posts(n=20000, seed=3):
    """Posts not in the benchmark, to drop patterns that hit nearly everything."""
    pool = _read("tweeteval_emoji_en.jsonl")[:n // 2] + _read("mlma_hate_en_fr_ar.jsonl")
    random.Random(seed).shuffle(pool)
    return pool[:n]


def write_posts(path, lines):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"\n".join(lines) + b"\n")
