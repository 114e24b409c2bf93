#!/usr/bin/env python3
"""Rule sets of 1k / 10k / 50k patterns built from the real lists in ../shared/data/patterns.

  perf/build_ruleset.py [--sizes 1000,10000,50000] [--out perf/results/tmp] [--tidewatch BIN]

Each set is a mix a trust-and-safety team would run: about 10% SpamAssassin regexes
(regex_spamassassin_apache2_pcre.hs_ok.txt, one rule each), about 25% profanity keywords in
the 8 languages of the benchmark posts (profanity_wash_54lang + profanity_ldnoobw, one rule
per language with `langs:`), the rest scam / phishing / malware domains as keywords (one rule
per 1,000 domains). Written per size to OUT/ruleset-<k>/:

  rules.yaml + lists/*.txt   what tidewatch and the Python peer load
  rules.tsv                  the same patterns flat (rule, kind, langs, pattern) for the JVM
                             peer and perf/fair/scan_only
  stats.json                 pattern counts, what was dropped and why

A regex is dropped when Hyperscan refuses it in tidewatch's flags, or when it hits more than
1% of the calibration posts (tweeteval/mlma posts that are not benchmark posts: `/./` would
flag every post). A profanity keyword is dropped when it hits more than 1% of the calibration
posts of its language (short words that are also common words elsewhere). `tidewatch rules
check` then validates the set; regexes it refuses are dropped and the set is rewritten.
"""

import argparse
import json
import re
import subprocess
import sys
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fair_data import DATA, LANGS, ROOT, TMP, calibration_posts  # noqa: E402

PAT = DATA / "patterns"
MAX_HIT_RATE = 0.01


def fold(text):
    """The `folded` view as Python can write it: NFKC + casefold, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def load_regexes():
    """(expr, inline-flag prefix) from the SpamAssassin list, `N:/expr/flags` lines."""
    out = []
    for line in (PAT / "regex_spamassassin_apache2_pcre.hs_ok.txt").read_text(
            encoding="utf-8", errors="replace").splitlines():
        m = re.match(r"^\d+:/(.*)/([a-z]*)$", line)
        if not m:
            continue
        expr, flags = m.group(1), m.group(2)
        if "x" in flags:
            continue
        prefix = "".join(f for f in flags if f in "sm")
        out.append(f"(?{prefix}){expr}" if prefix else expr)
    return out


def load_profanity():
    words = defaultdict(list)
    for name in ("profanity_wash_54lang.tsv", "profanity_ldnoobw.tsv"):
        for line in (PAT / name).read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) == 2 and parts[0] in LANGS:
                w = parts[1].strip()
                if w and "\n" not in w and w.casefold() not in {x.casefold() for x in words[parts[0]]}:
                    words[parts[0]].append(w)
    return words


def load_domains():
    seen, out = set(), []
    for name in ("scam_domains_blocklistproject.txt", "malware_hosts_urlhaus_20210103.txt",
                 "ransomware_domains_blocklistproject.txt", "phishing_domains_blocklistproject.txt"):
        for line in (PAT / name).read_text(encoding="utf-8", errors="replace").splitlines():
            d = line.strip().lower()
            if d and not d.startswith("#") and "." in d and d not in seen and \
                    not re.fullmatch(r"[\d.]+", d):
                seen.add(d)
                out.append(d)
    return out


def hit_rates(patterns, texts, flags_of):
    """Fraction of texts each pattern hits (Hyperscan, like tidewatch); None = refused."""
    import hyperscan

    ok, ids = [], []
    for i, p in enumerate(patterns):
        try:
            hyperscan.Database().compile(expressions=[p.encode()], flags=[flags_of(p)])
            ok.append(i)
        except hyperscan.error:
            pass
    db = hyperscan.Database()
    db.compile(expressions=[patterns[i].encode() for i in ok], ids=ok,
               flags=[flags_of(patterns[i]) | hyperscan.HS_FLAG_SINGLEMATCH for i in ok])
    counts = Counter()
    for t in texts:
        hit = set()
        db.scan(t.encode(), match_event_handler=lambda i, a, b, f, c: hit.add(i))
        counts.update(hit)
    rates = [None] * len(patterns)
    for i in ok:
        rates[i] = counts[i] / max(len(texts), 1)
    return rates


def regex_flags(p):
    import hyperscan
    f = hyperscan.HS_FLAG_CASELESS
    if any(ord(c) > 127 for c in p):
        f |= hyperscan.HS_FLAG_UTF8
    return f


def calibrated(cal):
    texts = [fold(json.loads(l).get("text") or "") for l in cal]
    by_lang = defaultdict(list)
    for l, t in zip(cal, texts):
        by_lang[json.loads(l).get("lang")].append(t)
    dropped = Counter()
    regexes = load_regexes()
    rates = hit_rates(regexes, texts, regex_flags)
    good_rx = []
    for p, r in zip(regexes, rates):
        if r is None:
            dropped["regex: refused by hyperscan"] += 1
        elif r > MAX_HIT_RATE:
            dropped["regex: hits >1% of calibration posts"] += 1
        else:
            good_rx.append(p)
    import hyperscan
    prof = load_profanity()
    good_prof = {}
    for lang, words in sorted(prof.items()):
        sample = by_lang.get(lang) or texts
        exprs = [r"(?:^|[^\w])" + re.escape(fold(w)) + r"(?:$|[^\w])" for w in words]
        rates = hit_rates(exprs, sample,
                          lambda p: hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_UTF8 |
                          hyperscan.HS_FLAG_UCP)
        keep = []
        for w, r in zip(words, rates):
            if r is not None and r > MAX_HIT_RATE:
                dropped[f"profanity {lang}: hits >1% of calibration posts"] += 1
            else:
                keep.append(w)
        good_prof[lang] = keep
    return good_rx, good_prof, load_domains(), dropped


def take_profanity(prof, n):
    """n keywords spread round-robin over the languages."""
    out = defaultdict(list)
    queues = {lang: list(ws) for lang, ws in prof.items()}
    while n > 0 and any(queues.values()):
        for lang in sorted(queues):
            if queues[lang] and n > 0:
                out[lang].append(queues[lang].pop(0))
                n -= 1
    return out


def write_set(dest, regexes, prof, domains):
    lists = dest / "lists"
    lists.mkdir(parents=True, exist_ok=True)
    for old in lists.glob("*.txt"):
        old.unlink()
    rules, flat = [], []
    for i, rx in enumerate(regexes):
        rid = f"sa.regex_{i:04d}"
        rules.append({"id": rid, "category": "spam", "severity": "medium", "regex": [rx]})
        flat.append((rid, "regex", "", rx))
    for lang, words in sorted(prof.items()):
        if not words:
            continue
        rid = f"profanity.{lang}"
        (lists / f"profanity_{lang}.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
        rules.append({"id": rid, "category": "abuse", "severity": "low", "langs": [lang],
                      "keywords_file": f"lists/profanity_{lang}.txt"})
        flat += [(rid, "keyword", lang, w) for w in words]
    for c in range(0, len(domains), 1000):
        chunk = domains[c:c + 1000]
        rid = f"domains.block_{c // 1000:03d}"
        (lists / f"domains_{c // 1000:03d}.txt").write_text("\n".join(chunk) + "\n")
        rules.append({"id": rid, "category": "phishing", "severity": "high",
                      "keywords_file": f"lists/domains_{c // 1000:03d}.txt"})
        flat += [(rid, "keyword", "", d) for d in chunk]
    # JSON is YAML: one flow document, no quoting surprises for regexes.
    (dest / "rules.yaml").write_text(
        "# generated by perf/build_ruleset.py from ../shared/data/patterns\n" +
        json.dumps({"rules": rules}, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    with open(dest / "rules.tsv", "w", encoding="utf-8") as f:
        for row in flat:
            f.write("\t".join(row) + "\n")
    return len(flat)


def refused_regex_lines(binary, dest):
    """Line numbers tidewatch `rules check` refuses (problems are printed as file:line)."""
    out = subprocess.run([binary, "rules", "check", str(dest / "rules.yaml")],
                         capture_output=True, text=True)
    lines = set()
    for m in re.finditer(r"rules\.yaml:(\d+)", out.stdout + out.stderr):
        lines.add(int(m.group(1)))
    return out.returncode, lines, (out.stdout + out.stderr)[-2000:]


def build(size, rx_all, prof_all, dom_all, dest, binary):
    n_rx = min(len(rx_all), size // 10)
    n_prof = min(sum(len(v) for v in prof_all.values()), size // 4)
    regexes = list(rx_all[:n_rx])
    prof = take_profanity(prof_all, n_prof)
    domains = dom_all[:size - n_rx - n_prof]
    refused = 0
    for _ in range(5):
        total = write_set(dest, regexes, prof, domains)
        if not binary:
            break
        rc, lines, text = refused_regex_lines(binary, dest)
        if rc == 0:
            break
        yaml_lines = (dest / "rules.yaml").read_text(encoding="utf-8").splitlines()
        bad = set()
        for ln in lines:
            for j in range(ln - 1, max(ln - 8, 0), -1):
                m = re.search(r'"id": "sa\.regex_(\d+)"', yaml_lines[j])
                if m:
                    bad.add(int(m.group(1)))
                    break
        if not bad:
            raise SystemExit(f"rules check failed on {dest}/rules.yaml:\n{text}")
        refused += len(bad)
        regexes = [r for i, r in enumerate(regexes) if i not in bad]
        # keep the size: take replacements from the rest of the list
        spare = [r for r in rx_all[n_rx:] if r not in regexes]
        regexes += spare[:len(bad)]
        n_rx += len(bad)
    return {"patterns": total, "regexes": len(regexes),
            "profanity_keywords": sum(len(v) for v in prof.values()),
            "profanity_langs": sorted(k for k, v in prof.items() if v),
            "domains": len(domains), "regexes_refused_by_tidewatch": refused}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,50000")
    ap.add_argument("--out", default=str(TMP))
    ap.add_argument("--tidewatch", default=str(ROOT / "build" / "tidewatch"))
    args = ap.parse_args()
    binary = args.tidewatch if Path(args.tidewatch).exists() else None
    rx, prof, dom, dropped = calibrated(calibration_posts())
    summary = {"calibration_dropped": dict(dropped), "available": {
        "regexes": len(rx), "profanity": sum(len(v) for v in prof.values()), "domains": len(dom)}}
    for size in [int(s) for s in args.sizes.split(",")]:
        dest = Path(args.out) / f"ruleset-{size // 1000}k"
        summary[f"{size // 1000}k"] = build(size, rx, prof, dom, dest, binary)
        (dest / "stats.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(f"{dest}: {summary[f'{size // 1000}k']}", flush=True)
    print(json.dumps(summary["calibration_dropped"], indent=1))


if __name__ == "__main__":
    main()
