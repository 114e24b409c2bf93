"""Shadow rules and the flood guard against a real broker (and, for the fleet, a real
redis-server): shadow hits never reach the alert topic and go to the shadow topic marked
"shadow": true; a rule flooding the posts is muted (one rule_muted record, its later hits in
shadow); two workers of one group decide the mute on their shared counts."""

import json
import re
import urllib.request

from harness import free_port, scaled, unique_name, wait_until

RULES = """\
rules:
  - id: scam.prize
    category: scam
    severity: high
    keywords: ["claim your prize"]
  - id: trial.free
    category: spam
    severity: low
    keywords: [free]
    shadow: true
  - id: broad.today
    category: spam
    severity: low
    keywords: [today]
"""


def topics(kafka, prefix, partitions):
    names = {k: unique_name(f"{prefix}-{k}") for k in ("in", "al", "dlq", "shadow", "ctl")}
    kafka.create_topics(names.values(), partitions=partitions)
    return names


def worker_args(kafka, group, t, rules, http_port, min_posts, extra=()):
    return ["run", "--brokers", kafka.bootstrap, "--group", group, "--input-topic", t["in"],
            "--output-topic", t["al"], "--dlq-topic", t["dlq"], "--rules", str(rules),
            "--http", f"127.0.0.1:{http_port}", "-X", "batch_timeout_ms=50",
            "-X", f"shadow_topic={t['shadow']}", "-X", f"campaign.topic={t['ctl']}",
            "-X", "flood.max_share=0.5", "-X", f"flood.min_posts={min_posts}",
            "-X", "flood.window_s=60", "-X", "flood.cooloff_s=600", *extra]


def posts(prefix, n, partitions, first_text=None):
    out = []
    for i in range(n):
        text = first_text if (i == 0 and first_text) else f"lovely weather today, note {i}"
        out.append((f"{prefix}{i}", json.dumps({"id": f"{prefix}{i}", "text": text}),
                    i % partitions))
    return out


def metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def metric(text, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(rf"^{name}\{{{re.escape(want)}\}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def rules_in(record):
    return {m["rule"] for m in record.json()["matches"]}


def test_shadow_rule_and_a_muted_flood_rule(kafka, workers, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    t = topics(kafka, "shadow", 2)
    group = unique_name("shadow-g")
    port = free_port()
    w = workers.start(worker_args(kafka, group, t, rules, port, min_posts=20), name="shadow")

    # wave 1: every post says "today" (100% > 50%); one is a live scam that also says "free"
    kafka.produce(t["in"], posts("a", 30, 2, "claim your prize today, it is free"))
    muted = kafka.consume_all(t["ctl"], expected_count=1, timeout=90)
    assert len(muted) == 1, [m.value for m in muted]
    record = muted[0].json()
    assert muted[0].key == b"rule_muted:broad.today"
    assert muted[0].header("type") == "rule_muted"
    assert record["type"] == "rule_muted" and record["rule"] == "broad.today"
    assert record["decided_on"] == "worker" and record["posts"] >= 20
    assert record["share"] > 0.5 and record["window_s"] == 60

    # wave 2, after the mute: broad.today's hits are shadow hits, no alert for them
    kafka.produce(t["in"], posts("b", 10, 2))
    wait_until(lambda: kafka.committed_offsets(group, t["in"]) == kafka.high_watermarks(t["in"]),
               scaled(60), "all posts committed", proc=w)
    alerts = kafka.consume_all(t["al"])
    shadow = kafka.consume_all(t["shadow"])
    by_id = {a.key.decode(): rules_in(a) for a in alerts}
    assert "scam.prize" in by_id["a0"] and "trial.free" not in by_id["a0"]
    assert all("trial.free" not in r for r in by_id.values())
    assert not [k for k in by_id if k.startswith("b")], by_id  # muted: no live alert
    shadow_by_id = {s.key.decode(): s.json() for s in shadow}
    assert all(s["shadow"] is True for s in shadow_by_id.values())
    assert "trial.free" in {m["rule"] for m in shadow_by_id["a0"]["matches"]}
    for i in range(10):
        assert {m["rule"] for m in shadow_by_id[f"b{i}"]["matches"]} == {"broad.today"}
    assert all(s.header("type") == "shadow" for s in shadow)

    text = metrics(port)
    assert metric(text, "tidewatch_rule_muted", rule="broad.today") == 1
    assert metric(text, "tidewatch_rule_hits_total", rule="trial.free", mode="shadow") == 1
    assert metric(text, "tidewatch_rule_hits_total", rule="broad.today", mode="shadow") >= 10
    assert metric(text, "tidewatch_rule_hits_total", rule="trial.free", mode="live") == 0
    assert workers.stop(w) == 0


def test_fleet_wide_mute_seen_by_two_workers(kafka, redis_clean, workers, tmp_path):
    """Two workers of one group sharing Redis: neither alone sees flood.min_posts posts, the
    fleet does; the rule is muted once (one rule_muted record, decided on the fleet's counts)
    and both workers apply the mute (their gauges say 1, later hits go to shadow)."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    t = topics(kafka, "fleet", 4)
    group = unique_name("fleet-g")
    ports = [free_port(), free_port()]
    url = redis_clean.url_for(6)
    ws = [workers.start(worker_args(kafka, group, t, rules, ports[i], min_posts=30,
                                    extra=("--redis", url)), name=f"fleet{i}")
          for i in range(2)]

    def both_assigned():
        return all(any(r.get("msg", "").startswith("assigned ") and
                       not r["msg"].startswith("assigned 0") for r in w.log_records())
                   for w in ws)

    wait_until(both_assigned, scaled(60), "both workers to own partitions", proc=ws[0])
    # 40 posts over 4 partitions: about 20 per worker, below min_posts 30 alone
    kafka.produce(t["in"], posts("f", 40, 4))
    muted = kafka.consume_all(t["ctl"], expected_count=1, timeout=90)
    assert len(muted) == 1, [m.value for m in muted]
    record = muted[0].json()
    assert record["rule"] == "broad.today" and record["decided_on"] == "fleet"
    assert record["posts"] >= 30

    def both_muted():
        return all(metric(metrics(p), "tidewatch_rule_muted", rule="broad.today") == 1
                   for p in ports)

    wait_until(both_muted, scaled(30), "both workers to apply the mute", proc=ws[1])
    kafka.produce(t["in"], posts("g", 8, 4))
    wait_until(lambda: kafka.committed_offsets(group, t["in"]) == kafka.high_watermarks(t["in"]),
               scaled(60), "all posts committed", proc=ws[0])
    alerts = {a.key.decode() for a in kafka.consume_all(t["al"])}
    assert not [k for k in alerts if k.startswith("g")], alerts
    shadow = {s.key.decode() for s in kafka.consume_all(t["shadow"])}
    assert {f"g{i}" for i in range(8)} <= shadow
    assert len(kafka.consume_all(t["ctl"])) == 1  # still one record for the fleet
    for w in ws:
        assert workers.stop(w) == 0
