#!/usr/bin/env python3
"""Recall of obfuscated keywords and false positives on real posts, per normalization view.

usage: perf/recall_views.py [--bin build/tidewatch] [--data ../shared/data]
                            [--max-keywords 400] [--posts 218361] [--out perf/results/recall_views.json]

Keywords: the English list of profanity_ldnoobw.tsv (real, public; Latin script, 4+ letters).
For each keyword, obfuscated variants are generated (zero-width characters, Cyrillic/Greek
homoglyphs, fullwidth, mathematical bold, diacritics, leetspeak, dotted and spaced letters,
repeated letters, mixed case) and put in a sentence; every variant is scanned with three
rules files that differ only in views:
  folded    views: [folded]                      (what tidewatch did before views)
  skeleton  default (folded + skeleton)
  squash    views: [folded, skeleton, squash]
Recall = share of variant posts on which the keyword's rule hits. False positives: the real
posts of posts_mixed.txt are scanned with each file; posts hit by skeleton or squash but not by
folded are counted (and a sample is written) - with an English profanity list every folded hit
is a true hit of the literal word, so the extra hits are what each view adds, to be read.
Skips cleanly (exit 0, saying so) when the shared data is absent.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

HOMO = {"a": "\u0430", "c": "\u0441", "e": "\u0435", "o": "\u043e", "p": "\u0440",
        "x": "\u0445", "y": "\u0443", "i": "\u0456", "s": "\u0455", "k": "\u03ba",
        "v": "\u03bd", "h": "\u04bb", "j": "\u0458", "n": "\u03b7"}
LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "$", "t": "7", "g": "9", "b": "8"}
ACUTE = {"a": "\u00e1", "e": "\u00e9", "i": "\u00ed", "o": "\u00f3", "u": "\u00fa",
         "c": "\u00e7", "y": "\u00fd"}


def fullwidth(w):
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in w)


def mathbold(w):
    out = []
    for c in w:
        if "a" <= c <= "z":
            out.append(chr(0x1D41A + ord(c) - ord("a")))
        elif "A" <= c <= "Z":
            out.append(chr(0x1D400 + ord(c) - ord("A")))
        else:
            out.append(c)
    return "".join(out)


def sub_some(w, table, rng, share=0.5):
    idx = [i for i, c in enumerate(w) if c in table]
    if not idx:
        return None
    pick = set(rng.sample(idx, max(1, int(len(idx) * share))))
    return "".join(table[c] if i in pick else c for i, c in enumerate(w))


VARIANTS = {
    "plain": lambda w, r: w,
    "mixed_case": lambda w, r: "".join(c.upper() if i % 2 else c for i, c in enumerate(w)),
    "zero_width": lambda w, r: "\u200b".join(w),
    "soft_hyphen": lambda w, r: w[:2] + "\u00ad" + w[2:],
    "fullwidth": lambda w, r: fullwidth(w),
    "math_bold": lambda w, r: mathbold(w),
    "homoglyph": lambda w, r: sub_some(w, HOMO, r),
    "homoglyph_all": lambda w, r: sub_some(w, HOMO, r, 1.0),
    "diacritics": lambda w, r: sub_some(w, ACUTE, r),
    "combining": lambda w, r: "".join(c + "\u0301" if c in "aeiou" else c for c in w),
    # Spanish n-tilde is kept distinct on purpose ("a\u00f1o" is not "ano"): expected misses
    "n_tilde": lambda w, r: w.replace("n", "\u00f1") if "n" in w else None,
    "leet": lambda w, r: sub_some(w, LEET, r, 1.0),
    "dotted": lambda w, r: ".".join(w),
    "spaced": lambda w, r: " ".join(w),
    "dashed": lambda w, r: "-".join(w),
    "repeated": lambda w, r: "".join(c * 3 if c in "aeiou" else c for c in w),
}

VIEWS = {"folded": "  views: [folded]\n", "skeleton": "", "squash": "  views: [folded, skeleton, squash]\n"}


def write_rules(path, keywords, views_line):
    with open(path, "w") as f:
        f.write("rules:\n  - id: profanity.en\n    category: profanity\n    severity: low\n")
        f.write(views_line.replace("  views", "    views"))
        f.write("    keywords:\n")
        for k in keywords:
            f.write("      - %s\n" % json.dumps(k))


def scan(binary, rules, posts):
    env = dict(os.environ, TIDEWATCH_LOG_LEVEL="error")
    out = subprocess.run([binary, "scan", "--rules", rules, posts], capture_output=True,
                         text=True, env=env, check=True).stdout
    hits = {}
    for line in out.splitlines():
        try:
            a = json.loads(line)
        except ValueError:
            continue
        if "post_id" in a and a.get("matches"):
            hits[a["post_id"]] = a["matches"]
    return hits


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/tidewatch")
    ap.add_argument("--data", default=os.environ.get("TW_SHARED_DATA", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data")))
    ap.add_argument("--max-keywords", type=int, default=400)
    ap.add_argument("--posts", type=int, default=0, help="real posts to scan, 0 = all")
    ap.add_argument("--out", default="perf/results/recall_views.json")
    args = ap.parse_args()
    lst = os.path.join(args.data, "patterns", "profanity_ldnoobw.tsv")
    real = os.path.join(args.data, "posts", "posts_mixed.txt")
    if not (os.path.exists(lst) and os.path.exists(real)):
        print("recall_views: skipped: %s or %s not found" % (lst, real))
        return 0
    keywords = []
    for line in open(lst, encoding="utf-8"):
        lang, _, word = line.rstrip("\n").partition("\t")
        if lang == "en" and len(word) >= 4 and word.isascii() and word.replace(" ", "").isalpha():
            keywords.append(word.lower())
    rng = random.Random(20240601)
    keywords = sorted(set(keywords))
    if len(keywords) > args.max_keywords:
        keywords = sorted(rng.sample(keywords, args.max_keywords))
    tmp = tempfile.mkdtemp(prefix="tw-recall-")
    variant_posts = os.path.join(tmp, "variants.jsonl")
    expected = {}
    with open(variant_posts, "w") as f:
        for ki, k in enumerate(keywords):
            for name, fn in VARIANTS.items():
                v = fn(k, rng)
                if v is None:
                    continue
                pid = "%s|%d" % (name, ki)
                expected[pid] = name
                f.write(json.dumps({"id": pid, "text": "well this is %s , really" % v}) + "\n")
    real_posts = os.path.join(tmp, "real.jsonl")
    n = 0
    with open(real, encoding="utf-8") as src, open(real_posts, "w") as f:
        for i, line in enumerate(src):
            if args.posts and i >= args.posts:
                break
            f.write(json.dumps({"id": "r%d" % i, "text": line.rstrip("\n")}) + "\n")
            n += 1
    # Ordinary Cyrillic, Greek and Armenian words (the non-Latin lists of profanity_wash_54lang,
    # real words of those languages), alone and inside a sentence of their own script: an
    # English keyword must not fire on them through the skeleton's look-alikes.
    wash = os.path.join(args.data, "patterns", "profanity_wash_54lang.tsv")
    foreign_posts = os.path.join(tmp, "foreign.jsonl")
    nforeign = 0
    frame = {"ru": "это %s да", "uk": "це %s так", "be": "гэта %s так", "bg": "това е %s да",
             "sr": "то је %s да", "mk": "тоа е %s да", "mn": "энэ %s тийм", "el": "αυτό είναι %s ναι",
             "hy": "սա %s է"}
    with open(foreign_posts, "w") as f:
        for line in open(wash, encoding="utf-8"):
            lang, _, word = line.rstrip("\n").partition("\t")
            if lang in frame:
                for i, text in enumerate((word, frame[lang] % word)):
                    f.write(json.dumps({"id": "f%d_%d" % (nforeign, i), "text": text},
                                       ensure_ascii=False) + "\n")
                nforeign += 1
    result = {"keywords": len(keywords), "real_posts": n, "recall": {}, "real_posts_hit": {},
              "extra_hits_sample": {}, "foreign_words": nforeign, "foreign_posts_hit": {}}
    real_hits = {}
    for view, line in VIEWS.items():
        rules = os.path.join(tmp, "rules_%s.yaml" % view)
        write_rules(rules, keywords, line)
        hits = scan(args.bin, rules, variant_posts)
        per = {}
        for pid, name in expected.items():
            tot, got = per.get(name, (0, 0))
            per[name] = (tot + 1, got + (pid in hits))
        result["recall"][view] = {k: round(g / t, 3) for k, (t, g) in per.items()}
        real_hits[view] = scan(args.bin, rules, real_posts)
        result["foreign_posts_hit"][view] = len(scan(args.bin, rules, foreign_posts))
        result["real_posts_hit"][view] = len(real_hits[view])
    texts = {}
    with open(real_posts) as f:
        for line in f:
            p = json.loads(line)
            texts[p["id"]] = p["text"]
    for view in ("skeleton", "squash"):
        extra = sorted(set(real_hits[view]) - set(real_hits["folded"]), key=lambda s: int(s[1:]))
        result["extra_hits_%s" % view] = len(extra)
        sample = []
        for pid in extra[:40]:
            t = texts[pid]
            for s, e in real_hits[view][pid][0]["spans"][:1]:
                b = t.encode()
                sample.append(b[max(0, s - 25):e + 25].decode("utf-8", "replace"))
        result["extra_hits_sample"][view] = sample
    print("variant            " + "".join("%10s" % v for v in VIEWS))
    for name in VARIANTS:
        print("%-18s " % name + "".join("%10.3f" % result["recall"][v].get(name, 0) for v in VIEWS))
    print("real posts hit     " + "".join("%10d" % result["real_posts_hit"][v] for v in VIEWS))
    print("cyr/greek/arm posts hit " + "".join("%5d" % result["foreign_posts_hit"][v] for v in VIEWS)
          + "  (of %d words x 2 posts)" % nforeign)
    print("extra over folded: skeleton %d, squash %d" % (result["extra_hits_skeleton"],
                                                         result["extra_hits_squash"]))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
