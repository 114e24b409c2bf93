#!/usr/bin/env python3
"""domains_file on the real block-lists: recall of listed hosts however a post writes them,
no hit on look-alike non-listed names, and the cost of the list.

usage: perf/domains_eval.py [--bin build/tidewatch] [--data ../shared/data] [--sample 2000]
                            [--out perf/results/domains_eval.json]

The rule set is one rule per list (phishing, scam, ransomware, URLhaus hosts) with
`domains_file:` naming the real file. For a random sample of listed names, posts write each
name the ways spam does (plain, https:// with a path, a subdomain, hxxp:// and [.] defanged,
upper case with a trailing dot, fullwidth full stop); negative posts write names that must
NOT hit (a prefix glued to the name, the name under another top-level domain). Recall and
false hits are counted from `tidewatch scan` alerts; load time and memory come from
build/perf/bench_domains. Paths in the output are relative.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

LISTS = {"phishing": "phishing_domains_blocklistproject.txt",
         "scam": "scam_domains_blocklistproject.txt",
         "ransomware": "ransomware_domains_blocklistproject.txt",
         "malware": "malware_hosts_urlhaus_20210103.txt"}

FORMS = {
    "plain": lambda h: f"see {h} now",
    "https_path": lambda h: f"login at https://{h}/account/verify?id=7",
    "subdomain": lambda h: f"go to secure-login.{h}",
    "defanged": lambda h: "hxxp://" + h.replace(".", "[.]") + "/x",
    "upper_trailing_dot": lambda h: f"visit {h.upper()}.",
    "fullwidth_dot": lambda h: "open " + h.replace(".", "\uff0e"),
}
NEGATIVE = {
    "glued_prefix": lambda h: f"see not{h} now",
    "other_tld": lambda h: f"see {h}.zz-example now",
}


def covered(host, listed):
    """Whether host or one of its parent domains is on a list."""
    labels = host.split(".")
    return any(".".join(labels[i:]) in listed for i in range(len(labels)))


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    ap.add_argument("--bin", default=os.path.join(root, "build", "tidewatch"))
    ap.add_argument("--data", default=os.path.join(root, "..", "shared", "data"))
    ap.add_argument("--sample", type=int, default=2000)
    ap.add_argument("--out", default=os.path.join(here, "results", "domains_eval.json"))
    a = ap.parse_args()
    pat = os.path.join(a.data, "patterns")
    if not os.path.isdir(pat):
        print(f"domains_eval: {pat} is absent; nothing measured", file=sys.stderr)
        return 77
    rng = random.Random(20261202)
    names = {}
    listed = set()  # every listed name: a negative whose parent domain is listed is a true hit
    for kind, fname in LISTS.items():
        with open(os.path.join(pat, fname), encoding="utf-8") as f:
            every = [l.strip() for l in f if l.strip() and not l.startswith("#")]
        listed.update(h.lower().rstrip(".") for h in every)
        hosts = [h for h in every if "/" not in h and ":" not in h and not h[0].isdigit()]
        names[kind] = rng.sample(hosts, min(a.sample // len(LISTS), len(hosts)))
    with tempfile.TemporaryDirectory() as tmp:
        rules = os.path.join(tmp, "rules.yaml")
        with open(rules, "w") as f:
            f.write("rules:\n")
            for kind, fname in LISTS.items():
                f.write(f"  - {{id: list.{kind}, category: {kind}, severity: high, "
                        f"domains_file: {os.path.join(pat, fname)}}}\n")
        posts = os.path.join(tmp, "posts.jsonl")
        expect = {}
        with open(posts, "w") as f:
            n = 0
            for kind, hosts in names.items():
                for h in hosts:
                    for form, make in FORMS.items():
                        pid = f"p{n}"
                        n += 1
                        expect[pid] = ("pos", form, kind)
                        f.write(json.dumps({"id": pid, "text": make(h)}) + "\n")
                    for form, make in NEGATIVE.items():
                        pid = f"p{n}"
                        n += 1
                        if covered(make(h).split()[1].lower(), listed):
                            continue  # a listed parent (e.g. a hosting domain) covers it
                        expect[pid] = ("neg", form, kind)
                        f.write(json.dumps({"id": pid, "text": make(h)}) + "\n")
        t0 = time.monotonic()
        out = subprocess.run([a.bin, "scan", "--rules", rules, "-X", "rules_cache_dir=off",
                              posts], capture_output=True, text=True, check=True)
        wall = time.monotonic() - t0
    alerts = {}
    for line in out.stdout.splitlines():
        rec = json.loads(line)
        alerts[rec["post_id"]] = {m["rule"] for m in rec["matches"]}
    per_form = {}
    for pid, (polarity, form, kind) in expect.items():
        row = per_form.setdefault(form, {"polarity": polarity, "posts": 0, "hit": 0})
        row["posts"] += 1
        row["hit"] += f"list.{kind}" in alerts.get(pid, set())
    for row in per_form.values():
        row["share"] = round(row["hit"] / row["posts"], 4)
    result = {"sample_names": sum(len(v) for v in names.values()), "posts": len(expect),
              "scan_wall_s_incl_list_load": round(wall, 2), "by_form": per_form}
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"{'form':<20} {'kind':<9} {'posts':>6} {'hit':>6} {'share':>7}")
    for form, row in per_form.items():
        print(f"{form:<20} {row['polarity']:<9} {row['posts']:>6} {row['hit']:>6} "
              f"{row['share']:>7.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
