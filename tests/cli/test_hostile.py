"""Hostile input: posts, rules files and configs built to break a parser (issue 12 item 5).

The corpus comes from tests/fixtures/hostile/gen.py (the big files are generated here, never
committed). Checks: `scan` exits 0 and accounts for every input line, as a scan record on
stdout or a dead letter with a documented reason on stderr; `rules check` refuses a hostile
rules file with a file:line diagnostic (or accepts it) and never crashes or hangs; `config
show` refuses a hostile config with exit 2 and names the key. Sanitizer reports fail the test.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

BIN = os.environ["TIDEWATCH_BIN"]
SRC = os.environ["TW_SOURCE_DIR"]
RULES = os.path.join(SRC, "examples", "rules.yaml")
sys.path.insert(0, os.path.join(SRC, "tests", "fixtures", "hostile"))
import gen  # noqa: E402

REASONS = {"invalid_json", "invalid_utf8", "not_object", "missing_id", "missing_text",
           "too_large"}  # README, "Dead letters"
CRASH = re.compile(rb"AddressSanitizer|UndefinedBehaviorSanitizer|runtime error:|LeakSanitizer|"
                   rb"Segmentation fault|core dumped|Assertion .* failed|SUMMARY:")
TIMEOUT_S = 60
failures = []


def check(cond, what, out=b""):
    if not cond:
        if isinstance(out, bytes):
            out = out.decode("utf-8", "replace")
        failures.append(f"FAIL: {what}\n{out[-3000:]}")
    return cond


def run(*args):
    start = time.monotonic()
    try:
        r = subprocess.run([BIN, *args], capture_output=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        check(False, f"hung (> {TIMEOUT_S} s): {args}")
        return None
    r.elapsed = time.monotonic() - start
    check(r.returncode >= 0, f"killed by signal {-r.returncode}: {args}", r.stderr)
    check(not CRASH.search(r.stderr), f"crash or sanitizer report: {args}", r.stderr)
    return r


def scan_accounts_for_every_line(posts, *extra):
    """Every line is a scan record (--emit all), a dead letter or blank; none twice."""
    r = run("scan", "--rules", RULES, "--emit", "all", "--threads", "2", *extra, posts)
    if r is None:
        return
    name = os.path.basename(posts)
    check(r.returncode == 0, f"scan {name} {extra}: exit {r.returncode}", r.stderr)
    seen = {}
    for raw in r.stdout.splitlines():
        try:
            rec = json.loads(raw)
        except ValueError:
            check(False, f"scan {name}: stdout line is not JSON: {raw[:200]!r}")
            continue
        seen.setdefault(rec["line"], []).append("post " + rec["post_id"][:40])
    for raw in r.stderr.splitlines():
        try:
            rec = json.loads(raw)
        except ValueError:
            check(False, f"scan {name}: stderr line is not JSON: {raw[:200]!r}")
            continue
        if "dead_letter" not in rec:
            check(rec.get("level") in ("info", "debug"), f"scan {name}: log {raw[:300]!r}")
            continue
        dl = rec["dead_letter"]
        check(dl.get("reason") in REASONS, f"scan {name}: undocumented reason {dl}")
        check(dl.get("file") == posts, f"scan {name}: dead letter names the file {dl}")
        seen.setdefault(dl["line"], []).append(dl["reason"])
    with open(posts, "rb") as f:
        lines = f.read().split(b"\n")[:-1]
    for number, line in enumerate(lines, 1):
        got = seen.pop(number, [])
        if not line.strip(b"\r"):
            check(got == [], f"scan {name}:{number}: blank line produced {got}")
        else:
            check(len(got) == 1, f"scan {name}:{number}: {line[:80]!r} produced {got}")
    check(not seen, f"scan {name}: records for lines that do not exist: {sorted(seen)[:10]}")
    return r


def main():
    with tempfile.TemporaryDirectory() as tmp:
        gen.write(tmp)
        posts = os.path.join(tmp, "posts.jsonl")
        big = os.path.join(tmp, "posts-big.jsonl")

        r = scan_accounts_for_every_line(posts)
        if r:
            reasons = {json.loads(x)["dead_letter"]["reason"] for x in r.stderr.splitlines()
                       if x.startswith(b'{"dead_letter"')}
            check(reasons == REASONS - {"too_large"}, f"every reason but too_large: {reasons}")
            alerts = [json.loads(x) for x in r.stdout.splitlines()]
            check(any(a["post_id"] == "ok1" and a["alert"] for a in alerts),
                  "a good post among hostile ones still alerts", r.stdout)
        # Big posts: refused as too_large by default, matched in full under a raised limit.
        r = scan_accounts_for_every_line(big)
        if r:
            check(r.stderr.count(b'"reason":"too_large"') == 6, "big posts are too_large",
                  r.stderr)
        r = scan_accounts_for_every_line(big, "-X", "max_post_bytes=16777216")
        if r:
            ids = {json.loads(x)["post_id"]: json.loads(x) for x in r.stdout.splitlines()}
            check(ids.get("big1", {}).get("alert") is True, "1 MB text is matched", r.stdout)
            check("big2" in ids, "a million emoji are scanned", r.stdout)
        # The same posts from stdin, alerts only: exit 0, same dead letters.
        with open(posts, "rb") as f:
            s = subprocess.run([BIN, "scan", "--rules", RULES, "-"], stdin=f,
                               capture_output=True, timeout=TIMEOUT_S)
        check(s.returncode == 0 and not CRASH.search(s.stderr), "scan from stdin", s.stderr)

        # Hostile rules files.
        for name, (_, accepted) in sorted(gen.rules_files().items()):
            path = os.path.join(tmp, "rules", name + ".yaml")
            r = run("rules", "check", path)
            if r is None:
                continue
            out = r.stdout + r.stderr
            if accepted is not None:
                check((r.returncode == 0) == accepted,
                      f"rules check {name}: exit {r.returncode}, expected "
                      f"{'acceptance' if accepted else 'refusal'}", out)
            if r.returncode != 0:
                check(r.returncode == 1, f"rules check {name}: exit {r.returncode}", out)
                check(re.search(rb"%s:\d+: " % re.escape(path.encode()), out),
                      f"rules check {name}: no file:line diagnostic", out)
                check(len(out) < 1 << 20, f"rules check {name}: {len(out)} bytes of output")
            elif name.startswith("regex_bomb"):
                # An accepted backtracking bomb must still scan in linear time.
                bomb = os.path.join(tmp, "bomb.jsonl")
                with open(bomb, "w") as f:
                    for text in ("a" * 60000 + "!", "x" * 60000, "ab" * 30000):
                        f.write(json.dumps({"id": "b", "text": text}) + "\n")
                s = run("scan", "--rules", path, bomb)
                if s:
                    check(s.returncode == 0, f"scan with {name}: exit {s.returncode}", s.stderr)
                    check(s.elapsed < 20, f"scan with {name}: {s.elapsed:.1f} s")

        # Hostile configs: exit 2 and a message naming the file and the key.
        for name, (_, key) in sorted(gen.config_files().items()):
            path = os.path.join(tmp, "configs", name + ".yaml")
            r = run("config", "show", "--config", path)
            if r is None:
                continue
            out = r.stdout + r.stderr
            check(r.returncode == 2, f"config show {name}: exit {r.returncode}, expected 2", out)
            check(re.search(rb"%s:\d+: " % re.escape(path.encode()), out),
                  f"config show {name}: no file:line", out)
            if key:
                check(key.encode() in r.stderr, f"config show {name}: key {key} not named", out)

    if failures:
        sys.exit("\n".join(failures))
    print("ok: hostile posts, rules files and configs")


if __name__ == "__main__":
    main()
