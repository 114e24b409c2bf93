"""The peer a team would write instead of tidewatch: a Python loop with json, re and hashlib
doing the same job as `tidewatch scan` (decode, case-fold + NFKC, one alternation regex per
rule with whole-word keywords, exact-duplicate hash). Used by bench_throughput.py for a
side-by-side ratio on the same posts and rules; it is deliberately straightforward, not
deliberately slow."""

import hashlib
import json
import re
import sys
import unicodedata
from pathlib import Path

import yaml  # PyYAML; bench_throughput.py checks it is importable


def load_rules(path):
    base = Path(path).parent
    doc = yaml.safe_load(Path(path).read_text())
    compiled = []
    for rule in doc["rules"]:
        parts = []
        words = list(rule.get("keywords") or [])
        files = rule.get("keywords_file") or []
        for f in [files] if isinstance(files, str) else files:
            for line in (base / f).read_text().splitlines():
                if line.strip() and not line.startswith("#"):
                    words.append(line.strip())
        for w in words:
            w = unicodedata.normalize("NFKC", w).casefold()
            parts.append(r"(?<!\w)" + re.escape(w) + r"(?!\w)")
        regexes = rule.get("regex") or []
        parts += [regexes] if isinstance(regexes, str) else regexes
        compiled.append((rule["id"], re.compile("|".join(f"(?:{p})" for p in parts))))
    return compiled


def main():
    rules = load_rules(sys.argv[1])
    seen = {}
    alerts = 0
    with open(sys.argv[2], "rb") as f:
        for line in f:
            try:
                post = json.loads(line)
                text = post["text"]
            except (ValueError, KeyError, TypeError):
                continue
            norm = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
            hits = [rid for rid, rx in rules if rx.search(norm)]
            digest = hashlib.blake2b(norm.encode(), digest_size=8).digest()
            seen[digest] = seen.get(digest, 0) + 1
            if hits:
                alerts += 1
                json.dumps({"post_id": str(post.get("id")), "matches": hits})
    print(alerts)


if __name__ == "__main__":
    main()
