"""`tidewatch rules diff`: gained and lost hits per post and rule, counts, exit codes."""
import os
import subprocess
import sys

BIN = os.environ["TIDEWATCH_BIN"]
FIX = os.path.join(os.environ["TW_SOURCE_DIR"], "tests", "fixtures", "diff")


def diff(*extra):
    return subprocess.run([BIN, "rules", "diff", os.path.join(FIX, "old.yaml"),
                           os.path.join(FIX, "new.yaml"), os.path.join(FIX, "posts.jsonl"),
                           *extra], capture_output=True, text=True, timeout=120)


def check(cond, what, out):
    if not cond:
        sys.exit(f"FAIL: {what}\n--- output ---\n{out}")


r = diff()
out = r.stdout
check(r.returncode == 0, f"exit 0 without --fail-on-loss, got {r.returncode}", out + r.stderr)
changes = sorted(line.split(" [")[0].split(" ", 1)[1] for line in out.splitlines()
                 if line.startswith(FIX))
check(changes == ["id=d1 -rule=scam.advance_fee", "id=d2 +rule=spam.free",
                  "id=d3 +rule=spam.free", "id=d5 -rule=spam.retired"],
      f"changed posts and rules: {changes}", out)
check("[next of kin]" in out, "lost span shown in context", out)
check("5 posts (1 undecodable): 4 change, 1 gain an alert, 1 lose their alert, "
      "2 rule hits lost" in out, "totals line", out)
rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()
        if line.startswith(("scam.", "spam."))}
check(rows["scam.advance_fee"] == ["2", "1", "0", "1"], f"advance_fee row {rows}", out)
check(rows["spam.free"] == ["0", "2", "2", "0", "added"], f"free row {rows}", out)
check(rows["spam.retired"] == ["1", "0", "0", "1", "removed"], f"retired row {rows}", out)
check(":6:" in r.stderr, "undecodable line reported with its line number", r.stderr)

r = diff("--fail-on-loss")
check(r.returncode == 3, f"--fail-on-loss exits 3 on a loss, got {r.returncode}", r.stdout)
r = diff("--bogus")
check(r.returncode == 2, f"unknown option is a usage error, got {r.returncode}", r.stderr)
same = subprocess.run([BIN, "rules", "diff", os.path.join(FIX, "old.yaml"),
                       os.path.join(FIX, "old.yaml"), os.path.join(FIX, "posts.jsonl"),
                       "--fail-on-loss"], capture_output=True, text=True, timeout=120)
check(same.returncode == 0 and "0 change" in same.stdout, "a set against itself: no change",
      same.stdout)
print("ok: rules diff")
