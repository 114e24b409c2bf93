"""The analyst's terminal: on a terminal, scan, rules test and rules diff draw a progress line
and write text log lines on stderr; without one (pipelines, log collectors, these tests'
other runs) stderr stays JSON with no progress, and stdout is the same data either way."""
import json
import os
import pty
import re
import subprocess
import sys
import tempfile

BIN = os.environ["TIDEWATCH_BIN"]
SRC = os.environ["TW_SOURCE_DIR"]
RULES = os.path.join(SRC, "examples", "rules.yaml")
POSTS = os.path.join(SRC, "examples", "posts.jsonl")
DIFF = os.path.join(SRC, "tests", "fixtures", "diff")
PROGRESS = re.compile(rb"\r[0-9,]+ posts  [-0-9,]+ posts/s  [0-9.]+ (B|KiB|MiB) / [0-9.]+ "
                      rb"(B|KiB|MiB) \(\d+%\)  ETA [-0-9:]+\x1b\[K")
CLEAR = b"\r\x1b[K"


def environment(**extra):
    env = {k: v for k, v in os.environ.items()
           if k != "NO_COLOR" and not k.startswith("TIDEWATCH_")}
    env.update(extra)
    return env


def run_tty(args, **env):
    """Runs with stderr on a pseudo-terminal and stdout in a file: (rc, stdout, stderr)."""
    master, slave = pty.openpty()
    with tempfile.TemporaryFile() as out:
        p = subprocess.Popen([BIN, *args], stdin=subprocess.DEVNULL, stdout=out, stderr=slave,
                             env=environment(**env))
        os.close(slave)
        err = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the last writer closed the terminal
                break
            if not chunk:
                break
            err += chunk
        os.close(master)
        rc = p.wait(timeout=120)
        out.seek(0)
        return rc, out.read(), err


def run_pipe(args, **env):
    r = subprocess.run([BIN, *args], stdin=subprocess.DEVNULL, capture_output=True,
                       env=environment(**env), timeout=120)
    return r.returncode, r.stdout, r.stderr


def check(cond, what, shown=b""):
    if not cond:
        if isinstance(shown, bytes):
            shown = shown.decode("utf-8", "replace")
        sys.exit(f"FAIL: {what}\n--- output ---\n{shown!r}")


SCAN = ["scan", "--rules", RULES, POSTS]

try:  # a container without /dev/pts cannot run this test: say so instead of passing
    for fd in os.openpty():
        os.close(fd)
except OSError as e:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes", "on"):
        sys.exit(f"FAIL: no pseudo-terminal with CI=true: {e}")
    print(f"SKIPPED: no pseudo-terminal: {e}")
    sys.exit(77)

# scan on a terminal: the progress line, text log lines coloured by level, then cleared.
rc, out, err = run_tty(SCAN)
check(rc == 0, f"scan on a terminal exits 0, got {rc}", err)
check(PROGRESS.search(err), "progress line drawn on the terminal", err)
check(err.count(CLEAR) >= 1 and err.rfind(CLEAR) > PROGRESS.search(err).start(),
      "progress line cleared after its last drawing", err)
check(re.search(rb"\d\d:\d\d:\d\d \x1b\[32mINFO \x1b\[0m scanned 48 posts in", err),
      "text log line with time and coloured level", err)
check(b'{"ts"' not in err, "no JSON log lines on a terminal", err)
check(re.search(rb"posts\.jsonl:6: dead letter \(invalid_json\)", err),
      "dead letters in file:line form", err)
tty_out = out

# NO_COLOR: the same text, no colours (the progress line's erase code is not a colour).
rc, out, err = run_tty(SCAN, NO_COLOR="1")
check(rc == 0 and re.search(rb"\d\d:\d\d:\d\d INFO  scanned 48 posts", err),
      "NO_COLOR text log line", err)
check(not re.search(rb"\x1b\[[0-9;]*m", err), "no colour codes with NO_COLOR", err)
check(PROGRESS.search(err), "NO_COLOR keeps the progress line", err)

# log.format json on a terminal: JSON lines, still the progress line.
rc, out, err = run_tty(SCAN + ["-X", "log.format=json"])
check(rc == 0 and b'{"ts"' in err and b'"msg":"scanned 48 posts' in err,
      "log.format=json on a terminal writes JSON", err)

# Without a terminal: exactly the JSON of before, no progress, same stdout.
rc, out, err = run_pipe(SCAN)
check(rc == 0, f"scan without a terminal exits 0, got {rc}", err)
check(out == tty_out, "stdout is the same data with and without a terminal", out)
check(b"\r" not in err and b"\x1b" not in err, "no progress line or colours off a terminal", err)
lines = err.decode().splitlines()
check(lines and all(isinstance(json.loads(line), dict) for line in lines),
      "every stderr line is JSON off a terminal", err)
check(any(json.loads(line).get("msg", "").startswith("scanned 48 posts") for line in lines),
      "the summary log line", err)

# log.format text without a terminal: text, never colours; TIDEWATCH_LOG_FORMAT too.
for args, env in ((SCAN + ["-X", "log.format=text"], {}),
                  (SCAN, {"TIDEWATCH_LOG_FORMAT": "text"})):
    rc, out, err = run_pipe(args, **env)
    check(rc == 0 and re.search(rb"^\d\d:\d\d:\d\d INFO  scanned 48 posts", err, re.M),
          f"text log lines off a terminal ({args[-1]}, {env})", err)
    check(b"\x1b" not in err, "no colours off a terminal", err)

rc, out, err = run_pipe(SCAN + ["-X", "log.format=fancy"])
check(rc == 2 and b"auto, json, text" in err, "an unknown log.format is refused", err)

# rules test and rules diff: progress on a terminal, stdout unchanged, nothing off one.
for args in (["rules", "test", RULES, POSTS],
             ["rules", "diff", os.path.join(DIFF, "old.yaml"), os.path.join(DIFF, "new.yaml"),
              os.path.join(DIFF, "posts.jsonl")]):
    rc, tty_out, err = run_tty(args)
    check(rc == 0, f"{args[1]} on a terminal exits 0, got {rc}", err)
    check(PROGRESS.search(err), f"{args[1]}: progress line on a terminal", err)
    check(err.rstrip(b"\r\n").endswith(CLEAR) or err.rfind(CLEAR) > PROGRESS.search(err).start(),
          f"{args[1]}: progress line cleared", err)
    rc, out, err = run_pipe(args)
    timing = re.compile(rb"scanned in \d+\.\d+ s")  # rules test prints its time
    check(rc == 0 and timing.sub(b"", out) == timing.sub(b"", tty_out),
          f"{args[1]}: same stdout with and without a terminal", out)
    check(b"\r" not in err and b"\x1b" not in err, f"{args[1]}: no progress off a terminal", err)

rc, out, err = run_pipe(["rules", "test", RULES, POSTS], TIDEWATCH_LOG_FORMAT="fancy")
check(rc == 2 and b"TIDEWATCH_LOG_FORMAT" in err, "rules: a bad TIDEWATCH_LOG_FORMAT is refused",
      err)
print("ok: terminal")
