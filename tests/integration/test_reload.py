"""Rules hot reload under load: real Kafka broker, the worker as a subprocess.

Posts stream in while the rules file is replaced (inotify), its keywords file edited, a
broken version written (refused: the running set stays) and SIGHUP sent. Checks: every post
gets exactly one alert (none lost), every alert carries one of the two good rules_versions
and exactly the rules of that version (never a mix), versions only move forward within a
partition, and the refusal is logged and counted.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

from harness import run_tidewatch, scaled, unique_name, wait_until

V1 = """rules:
  - id: r.common
    category: spam
    keywords: [common]
  - id: r.alpha
    category: scam
    keywords_file: lists/alpha.txt
"""
V2 = """rules:
  - id: r.common
    category: spam
    keywords: [common]
  - id: r.beta
    category: scam
    severity: high
    keywords: [beta]
    examples:
      match: [beta here]
"""
BROKEN = V2 + """  - id: r.bad
    category: spam
    regex: ['fo(o']
"""
FAILS_EXAMPLES = V2.replace("match: [beta here]", "match: [nothing to see]")

BATCHES = 30
PER_BATCH = 50


def write_atomic(path: Path, text: str):
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def version_of(rules: Path) -> str:
    out = run_tidewatch(["rules", "check", str(rules)], env={"XDG_CACHE_HOME": "/nonexistent"})
    assert out.returncode == 0, out.stderr
    return re.search(rb"sha256:[0-9a-f]{64}", out.stdout).group(0).decode()


def test_reload_under_load(kafka, workers, tmp_path):
    rules_dir = tmp_path / "rules"
    (rules_dir / "lists").mkdir(parents=True)
    rules = rules_dir / "rules.yaml"
    (rules_dir / "lists" / "alpha.txt").write_text("alpha\n")
    rules.write_text(V1)
    v1 = version_of(rules)
    v1b_dir = tmp_path / "v1b"
    (v1b_dir / "lists").mkdir(parents=True)
    (v1b_dir / "rules.yaml").write_text(V1)
    (v1b_dir / "lists" / "alpha.txt").write_text("alpha\nalphas\n")
    v1b = version_of(v1b_dir / "rules.yaml")  # same rules file, edited keywords file
    v2_dir = tmp_path / "v2"
    v2_dir.mkdir()
    (v2_dir / "rules.yaml").write_text(V2)
    v2 = version_of(v2_dir / "rules.yaml")

    topics = [unique_name("rl-posts"), unique_name("rl-alerts"), unique_name("rl-dlq")]
    kafka.create_topics(topics, partitions=3)
    group = unique_name("rl-group")
    w = workers.start(["run", "--brokers", kafka.bootstrap, "--group", group,
                       "--input-topic", topics[0], "--output-topic", topics[1],
                       "--dlq-topic", topics[2], "--rules", str(rules),
                       "-X", "batch_timeout_ms=20", "-X", "batch_size=40",
                       "-X", f"rules_cache_dir={tmp_path / 'cache'}"])

    def logged(pattern):
        return lambda: re.search(pattern, w.stderr_text())

    n = 0
    for b in range(BATCHES):
        msgs = []
        for _ in range(PER_BATCH):
            pid = f"p{n}"
            msgs.append((pid, json.dumps({"id": pid, "text": f"common alpha beta {n}"})))
            n += 1
        kafka.produce(topics[0], msgs)
        if b == 6:  # the keywords file changes: reload through inotify
            (rules_dir / "lists" / "alpha.txt").write_text("alpha\nalphas\n")
        if b == 12:  # the rules file is replaced by rename, the way editors save
            write_atomic(rules, V2)
        if b == 18:  # a broken set is refused; the running one stays
            write_atomic(rules, BROKEN)
            wait_until(logged(r"rules reload \(file changed\) refused"), scaled(30),
                       "the broken rules to be refused", proc=w)
        if b == 22:  # examples that fail are refused too, and SIGHUP reloads
            write_atomic(rules, FAILS_EXAMPLES)
            time.sleep(0.05)
            os.kill(w.pid, signal.SIGHUP)
        time.sleep(0.05)

    records = kafka.consume_all(topics[1], expected_count=n, timeout=120)
    alerts = {}
    last_version = {}
    order = {v1: 0, v1b: 1, v2: 2}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        a = r.json()
        alerts.setdefault(a["post_id"], a)
        version = a["rules_version"]
        assert version in order, f"alert with unknown rules_version {version}: {a}"
        got = sorted(m["rule"] for m in a["matches"])
        want = ["r.alpha", "r.common"] if version in (v1, v1b) else ["r.beta", "r.common"]
        assert got == want, f"alert mixes rule versions: {a}"
        src = a["source"]["partition"]
        assert order[version] >= last_version.get(src, 0), f"version went back: {a}"
        last_version[src] = order[version]
    assert sorted(alerts) == sorted(f"p{i}" for i in range(n)), "posts lost"
    versions = {a["rules_version"] for a in alerts.values()}
    assert v1 in versions and v2 in versions, versions
    text = w.stderr_text()
    assert "fo(o" in text and "refused" in text
    assert re.search(r"rules reload \(SIGHUP\) refused", text), text[-3000:]
    assert "should match but does not" in text
    assert kafka.message_count(topics[2]) == 0
    workers.stop(w)


def test_reload_follows_a_configmap_symlink_swap(kafka, workers, tmp_path):
    """A Kubernetes ConfigMap volume: the kubelet writes a new timestamped directory, points a
    temporary symlink at it and renames that over `..data`; `rules.yaml` is a symlink through
    `..data`. No event names rules.yaml, so the worker must notice the swap itself (the
    resolved file's inode and mtime change) and the new rule must fire (issue #12, item 5)."""
    mount = tmp_path / "configmap"
    mount.mkdir()
    first = mount / "..2026_12_02_10_00_00.000000001"
    first.mkdir()
    (first / "rules.yaml").write_text(
        "rules:\n  - id: cm.one\n    category: spam\n    keywords: [alpha]\n")
    (mount / "..data").symlink_to(first.name)
    (mount / "rules.yaml").symlink_to("..data/rules.yaml")

    topics = [unique_name("cm-posts"), unique_name("cm-alerts"), unique_name("cm-dlq")]
    kafka.create_topics(topics, partitions=1)
    w = workers.start(["run", "--brokers", kafka.bootstrap, "--group", unique_name("cm-group"),
                       "--input-topic", topics[0], "--output-topic", topics[1],
                       "--dlq-topic", topics[2], "--rules", str(mount / "rules.yaml"),
                       "-X", "batch_timeout_ms=20",
                       "-X", f"rules_cache_dir={tmp_path / 'cache'}"])
    kafka.produce(topics[0], [("c1", json.dumps({"id": "c1", "text": "alpha and beta"}))])
    kafka.wait_for_messages(topics[1], 1, timeout=60, proc=w)

    # the kubelet's update, step by step
    second = mount / "..2026_12_02_10_05_00.000000002"
    second.mkdir()
    (second / "rules.yaml").write_text(
        "rules:\n  - id: cm.two\n    category: scam\n    keywords: [beta]\n")
    (mount / "..data_tmp").symlink_to(second.name)
    os.rename(mount / "..data_tmp", mount / "..data")
    (first / "rules.yaml").unlink()
    first.rmdir()

    wait_until(lambda: re.search(r"rules sha256:\S+ in use", w.stderr_text()), scaled(30),
               "the swapped ConfigMap to be reloaded", proc=w)
    kafka.produce(topics[0], [("c2", json.dumps({"id": "c2", "text": "alpha and beta"}))])
    records = kafka.consume_all(topics[1], expected_count=2, timeout=60)
    rules_of = {r.json()["post_id"]: [m["rule"] for m in r.json()["matches"]] for r in records}
    assert rules_of == {"c1": ["cm.one"], "c2": ["cm.two"]}, rules_of
    assert workers.stop(w) == 0, w.describe()
