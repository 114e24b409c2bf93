#!/usr/bin/env python3
"""The fair benchmark of issue 9: floors, tidewatch and its peers side by side in one run,
over the same posts and the same rule set, in CPU time per post.

  perf/bench_fair.py [--posts 40000] [--ruleset 10k] [--sweep 1k,10k,50k] [--threads N]
                     [--no-kafka] [--no-python] [--no-jvm] [--out perf/RESULTS.md]

Rows (all over the same N posts from perf/fair_data.py and the same rules from
perf/build_ruleset.py, built on first use):
  decode-only      build/perf/fair_decode_only: json_loadb + json_object_get("text")
  scan-only        build/perf/fair_scan_only: hs_scan of the folded texts, one database
  raw consume      kcat reading the topic to /dev/null (whole process: start-up included)
  tidewatch scan   per post = (CPU of N posts - CPU of 50 posts) / (N - 50): compile and
                   start-up cancel out (compiled-database cache warm in both)
  tidewatch run    memory store and Redis store against a real broker (tests/integration/
                   harness.py): worker CPU from /proc/PID/stat between /readyz and the moment
                   the committed offsets reach the end of the input; Redis CPU, commands and
                   used_memory deltas from INFO over the same interval; peak RSS = VmHWM
  python peer      perf/peer_python.py, file mode and Kafka + Redis mode
  jvm peer         perf/peer_jvm (Lucene MemoryIndex per post, percolator-style)
Peers print READY when their rules are compiled and DONE when every post is processed,
alerts flushed and offsets committed; CPU is read from /proc/PID/stat at those two lines.
Alert sets are compared with `tidewatch scan`'s (posts flagged, (post, rule) pairs, Jaccard)
before any ratio is read. The machine is shared: every figure is CPU time, not wall time.

Writes OUT (markdown) and OUT with .json. Exits 0 with a SKIP line when ../shared/data is
absent. Nothing machine-specific (paths, host names) goes into the results.
"""

import argparse
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fair_data import DATA, ROOT, TMP, bench_posts, write_posts  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------
# process measurements


def proc_cpu(pid):
    """utime + stime of every thread of pid, seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def proc_hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def run_rusage(cmd, stdout=subprocess.DEVNULL, env=None):
    """Runs cmd; returns (rc, cpu seconds of the child, peak RSS KiB)."""
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.PIPE, env=env)
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} exited {proc.returncode}: {err[-1500:]}")
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_info(port):
    out = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "INFO", "everything"],
                         capture_output=True, text=True, timeout=10).stdout
    fields, calls, by_command = {}, 0, {}
    for line in out.splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.strip().split(":", 1)
            fields[k] = v
            if k.startswith("cmdstat_") and not k.startswith("cmdstat_info"):
                n = int(dict(kv.split("=") for kv in v.split(","))["calls"])
                calls += n
                by_command[k[len("cmdstat_"):]] = n
    return {"cpu": float(fields["used_cpu_sys"]) + float(fields["used_cpu_user"]),
            "calls": calls, "by_command": by_command, "mem": int(fields["used_memory"])}


def redis_delta(before, after, n):
    return {"redis_cpu_us_per_post": (after["cpu"] - before["cpu"]) / n * 1e6,
            "redis_commands_per_post": (after["calls"] - before["calls"]) / n,
            "redis_bytes_per_post": (after["mem"] - before["mem"]) / n,
            # calls per command over the run: EVALSHA is one per batch (single server), so
            # it gives the mean batch size the store saw
            "redis_calls": {c: k - before["by_command"].get(c, 0)
                            for c, k in after["by_command"].items()
                            if k != before["by_command"].get(c, 0)}}


# ---------------------------------------------------------------------------------------
# alert sets


def alert_pairs_from_jsonl(lines):
    """{(post_id, rule)} from tidewatch / peer alert records."""
    pairs = set()
    for line in lines:
        if not line.strip():
            continue
        a = json.loads(line)
        for m in a.get("matches") or []:
            pairs.add((str(a["post_id"]), m.get("rule")))
    return pairs


def compare(ref, other, exclude_rules=()):
    ex = set(exclude_rules)
    r = {p for p in ref if p[1] not in ex}
    o = {p for p in other if p[1] not in ex}
    rp, op = {p[0] for p in r}, {p[0] for p in o}
    jac = lambda a, b: len(a & b) / len(a | b) if a | b else 1.0  # noqa: E731
    return {"pairs": len(o), "pairs_ref": len(r), "posts": len(op), "posts_ref": len(rp),
            "pairs_jaccard": round(jac(r, o), 4), "posts_jaccard": round(jac(rp, op), 4),
            "rules_excluded": len(ex)}


# ---------------------------------------------------------------------------------------
# peers: READY / DONE protocol on stdout


def run_peer(cmd, n, redis_port=None, timeout=900, cwd=None, on_ready=None):
    """Starts a peer, measures its CPU between its READY and DONE lines; returns dict.
    on_ready (Kafka rows) produces the posts once the peer is ready."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=cwd)
    result, cpu0, info0 = {}, None, None
    deadline = time.monotonic() + timeout
    try:
        for raw in proc.stdout:
            line = raw.decode(errors="replace").strip()
            if line == "READY":
                cpu0 = proc_cpu(proc.pid)
                info0 = redis_info(redis_port) if redis_port else None
                if on_ready:
                    on_ready()
            elif line.startswith("DONE"):
                cpu1 = proc_cpu(proc.pid)
                info1 = redis_info(redis_port) if redis_port else None
                result = json.loads(line[4:] or "{}")
                result["cpu_s"] = cpu1 - cpu0
                result["cpu_us_per_post"] = (cpu1 - cpu0) / n * 1e6
                result["peak_rss_mib"] = round(proc_hwm_kb(proc.pid) / 1024, 1)
                if info0:
                    result.update(redis_delta(info0, info1, n))
                break
            if time.monotonic() > deadline:
                raise RuntimeError("peer timed out")
        proc.stdin.close()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if not result:
        raise RuntimeError(f"peer ended without DONE (rc {proc.returncode}): "
                           f"{proc.stderr.read().decode(errors='replace')[-1500:]}")
    return result


# ---------------------------------------------------------------------------------------
# rows


def tidewatch_extra_args(binary, threads):
    """--threads only where this build has it (branch threads), so the script runs on any main."""
    helptext = subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
    return ["--threads", str(threads)] if "--threads" in helptext else []


def row_tidewatch_scan(binary, rules, posts_file, small_file, n, extra, cache_dir):
    base = [binary, "scan", "--rules", rules] + extra
    run_rusage(base + [small_file])  # compiles once into the cache
    small = min(run_rusage(base + [small_file])[0] for _ in range(3))
    best, rss = None, None
    out_path = Path(posts_file).with_suffix(".alerts")
    for _ in range(3):
        with open(out_path, "wb") as out:
            cpu, rss = run_rusage(base + [posts_file], stdout=out)
        best = cpu if best is None else min(best, cpu)
    pairs = alert_pairs_from_jsonl(out_path.read_text(encoding="utf-8").splitlines())
    alerts = sum(1 for line in out_path.read_text(encoding="utf-8").splitlines() if line.strip())
    return {"cpu_us_per_post": (best - small) / (n - 50) * 1e6, "cpu_s_total": best,
            "cpu_s_50_posts": small, "peak_rss_mib": round(rss / 1024, 1),
            "alerts": alerts}, pairs


def wait_ready(port, proc, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("worker exited before ready")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("worker not ready in time")


def wait_committed(harness, broker, group, topic, proc, log, timeout=900):
    high = broker.high_watermarks(topic)
    deadline = time.monotonic() + timeout
    while True:
        try:
            committed = broker.committed_offsets(group, topic)
        except harness.KafkaException:
            committed = {}
        if committed and all(committed.get(p, -1) >= h for p, h in high.items()):
            return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker did not finish (log: {log.name})")
        time.sleep(0.1)


PACED = "#paced"


def produce_paced(broker, topic, posts, rate):
    """Produces posts at `rate` per second (ids suffixed so their alerts can be told apart)."""
    from confluent_kafka import Producer

    producer = Producer(broker.client_config(**{"linger.ms": 1}))
    t0 = time.monotonic()
    for i, raw in enumerate(posts):
        post = json.loads(raw)
        post["id"] = f"{post['id']}{PACED}"
        ahead = t0 + i / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        producer.produce(topic, key=str(i).encode(),
                         value=json.dumps(post, ensure_ascii=False).encode())
        producer.poll(0)
    producer.flush(60)


def row_tidewatch_run(broker, binary, rules, posts, n, redis=None, extra=(), cache_dir=None,
                      tag="memory", paced_posts=0):
    import harness

    topic, group, alerts, dlq = (f"fair-posts-{tag}", f"fair-{tag}", f"fair-alerts-{tag}",
                                 f"fair-dlq-{tag}")
    broker.create_topic(topic, 3)
    broker.create_topic(alerts, 3)
    broker.create_topic(dlq, 1)
    if redis:
        redis.flushall()
    port = free_port()
    log = open(TMP / f"worker-{tag}.log", "wb")
    cmd = [binary, "run", "--brokers", broker.bootstrap, "--group", group, "--input-topic",
           topic, "--output-topic", alerts, "--dlq-topic", dlq, "--rules", rules,
           "--http", f"127.0.0.1:{port}", "-X", "log_level=warn"] + list(extra) + (["--redis", redis.url] if redis else [])
    proc = subprocess.Popen(cmd, stderr=log, stdout=subprocess.DEVNULL)
    try:
        wait_ready(port, proc)
        cpu0 = proc_cpu(proc.pid)
        info0 = redis_info(redis.port) if redis else None
        t0 = time.monotonic()
        produce(broker, topic, posts)
        wait_committed(harness, broker, group, topic, proc, log)
        wall = time.monotonic() - t0
        cpu1 = proc_cpu(proc.pid)
        info1 = redis_info(redis.port) if redis else None
        row = {"cpu_us_per_post": (cpu1 - cpu0) / n * 1e6, "cpu_s": cpu1 - cpu0,
               "peak_rss_mib": round(proc_hwm_kb(proc.pid) / 1024, 1)}
        if redis:
            row.update(redis_delta(info0, info1, n))
        row["max_rate_posts_per_s_wall"] = round(n / wall)
        if paced_posts:
            # the delay at half the rate just measured (wall clock, so on a shared machine
            # it is the rate the worker reached under that load)
            row["paced_rate_posts_per_s"] = round(n / wall / 2)
            produce_paced(broker, topic, posts[:paced_posts], n / wall / 2)
            wait_committed(harness, broker, group, topic, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    records = broker.consume_all(alerts)
    paced = [r for r in records if r.key and r.key.decode().endswith(PACED)]
    records = [r for r in records if not (r.key and r.key.decode().endswith(PACED))]
    row["alerts"] = len(records)
    row.update(delays(broker, topic, records))
    if paced:
        d = delays(broker, topic, paced)
        row["paced_delay_p50_ms"], row["paced_delay_p99_ms"] = d.get("delay_p50_ms"), \
            d.get("delay_p99_ms")
        row["paced_alerts"] = len(paced)
    pairs = alert_pairs_from_jsonl([r.value.decode() for r in records])
    return row, pairs


def produce(broker, topic, posts):
    broker.produce(topic, [(str(i).encode(), p) for i, p in enumerate(posts)], timeout=300)


def delays(broker, topic, alert_records):
    """p50/p99 of alert timestamp - input timestamp (ms, Kafka CreateTime of each)."""
    sent = {}
    for r in broker.consume_all(topic, timeout=120):
        try:
            sent[str(json.loads(r.value)["id"])] = r.timestamp
        except (ValueError, KeyError):
            pass
    d = sorted(a.timestamp - sent[a.key.decode()] for a in alert_records
               if a.key and a.key.decode() in sent)
    if not d:
        return {}
    return {"delay_p50_ms": d[len(d) // 2], "delay_p99_ms": d[min(len(d) - 1, len(d) * 99 // 100)]}


def row_kcat(broker, topic, n):
    if not shutil.which("kcat"):
        return {"skipped": "kcat not installed"}
    cpu, rss = run_rusage(["kcat", "-C", "-b", broker.bootstrap, "-t", topic, "-o", "beginning",
                           "-e", "-q", "-f", "%s\n"])
    return {"cpu_us_per_post": cpu / n * 1e6, "cpu_s": cpu, "peak_rss_mib": round(rss / 1024, 1),
            "note": "whole process, start-up included"}


def jvm_peer_cmd():
    """java command of perf/peer_jvm, built with Maven on first use; (cmd, None) or (None, why)."""
    d = ROOT / "perf" / "peer_jvm"
    jar = d / "target" / "peer-jvm-1.0.jar"
    if not jar.exists():
        if not shutil.which("mvn"):
            return None, "mvn not installed"
        out = subprocess.run(["mvn", "-B", "-q", "package"], cwd=d, capture_output=True,
                             text=True)
        if out.returncode != 0 or not jar.exists():
            return None, "maven build failed: " + (out.stdout + out.stderr)[-800:]
    cp = os.pathsep.join([str(jar), str(d / "target" / "lib" / "*")])
    return ["java", "-Xmx2g", "-cp", cp, "tidewatch.peer.Main"], None


# ---------------------------------------------------------------------------------------


def ensure_rulesets(sizes, binary):
    missing = [s for s in sizes if not (TMP / f"ruleset-{s}" / "rules.yaml").exists()]
    if missing:
        subprocess.run([sys.executable, str(ROOT / "perf" / "build_ruleset.py"), "--sizes",
                        ",".join(str(int(s[:-1]) * 1000) for s in missing), "--tidewatch",
                        binary], check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--posts", type=int, default=40000)
    ap.add_argument("--ruleset", default="10k")
    ap.add_argument("--sweep", default="1k,10k,50k", help="rule-set sizes for the scan sweep")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--no-kafka", action="store_true")
    ap.add_argument("--no-python", action="store_true")
    ap.add_argument("--no-jvm", action="store_true")
    ap.add_argument("--jvm-file", action="store_true",
                    help="also run the JVM peer over the file (off by default: it is slow)")
    ap.add_argument("--out", default=str(ROOT / "perf" / "RESULTS.md"))
    ap.add_argument("--paced-posts", type=int, default=8000,
                    help="tidewatch run rows: then this many posts at half the measured "
                    "maximum rate, for the delay (0 = off)")
    ap.add_argument("--render-only", action="store_true",
                    help="rewrite OUT from OUT's .json (no measurement)")
    args = ap.parse_args()
    if args.render_only:
        out = Path(args.out)
        res = json.loads(out.with_suffix(".json").read_text())
        args.posts, args.ruleset = res["posts"], res["ruleset"]
        png = ROOT / "perf" / "results" / "fair-sweep.png"
        res["plot"] = os.path.relpath(png, out.parent) if png.exists() else None
        out.write_text(scrub(render(res, args)))
        return 0
    if not (DATA / "posts").is_dir():
        print(f"SKIP: {DATA} is absent; the benchmark reads real posts from it")
        return 0
    build = Path(args.build)
    binary = str(build / "tidewatch")
    sweep = [s for s in args.sweep.split(",") if s]
    ensure_rulesets(sorted(set(sweep + [args.ruleset])), binary)
    rules = str(TMP / f"ruleset-{args.ruleset}" / "rules.yaml")
    rules_tsv = str(TMP / f"ruleset-{args.ruleset}" / "rules.tsv")
    n = args.posts
    posts = bench_posts(n)
    posts_file = TMP / f"posts-{n}.jsonl"
    small_file = TMP / "posts-50.jsonl"
    write_posts(posts_file, posts)
    write_posts(small_file, posts[:50])
    cache_dir = Path(tempfile.mkdtemp(prefix="tw-fair-cache-"))
    extra = tidewatch_extra_args(binary, args.threads)
    stats = json.loads((TMP / f"ruleset-{args.ruleset}" / "stats.json").read_text())
    res = {"posts": n, "ruleset": args.ruleset, "ruleset_stats": stats.get(args.ruleset),
           "calibration_dropped": stats.get("calibration_dropped"),
           "tidewatch_args": extra, "machine": machine(), "rows": {}, "compare": {},
           "sweep": {}}
    rows, cmp_ = res["rows"], res["compare"]

    def step(name, fn):
        t0 = time.monotonic()
        print(f"-- {name}", file=sys.stderr, flush=True)
        try:
            return fn()
        except Exception as e:  # a failed row is reported, the others still run
            why = " ".join(f"{type(e).__name__}: {e}".split())
            rows[name] = {"skipped": why if len(why) < 700 else why[:200] + " ... " + why[-450:]}
            return None
        finally:
            print(f"   {name}: {time.monotonic() - t0:.0f}s wall", file=sys.stderr, flush=True)

    def decode_only():
        out = subprocess.run([str(build / "perf" / "fair_decode_only"), str(posts_file)],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout)
        rows["decode-only (C, Jansson)"] = {"cpu_us_per_post": r["cpu_s"] / n * 1e6, **r}
    step("decode-only", decode_only)

    def scan_only(tsv):
        out = subprocess.run([str(build / "perf" / "fair_scan_only"), tsv, str(posts_file)],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout)
        return {"cpu_us_per_post": r["cpu_s"] / n * 1e6, **r}
    step("scan-only", lambda: rows.__setitem__("scan-only (C, Hyperscan, folded text)",
                                               scan_only(rules_tsv)))

    ref = None

    def tw_scan():
        nonlocal ref
        row, ref = row_tidewatch_scan(binary, rules, str(posts_file), str(small_file), n,
                                      extra, cache_dir)
        rows["tidewatch scan"] = row
    step("tidewatch scan", tw_scan)

    for size in sweep:
        def sweep_one(size=size):
            r = str(TMP / f"ruleset-{size}" / "rules.yaml")
            row, _ = row_tidewatch_scan(binary, r, str(posts_file), str(small_file), n, extra,
                                        cache_dir)
            floor = scan_only(str(TMP / f"ruleset-{size}" / "rules.tsv"))
            res["sweep"][size] = {"tidewatch_scan_cpu_us_per_post": row["cpu_us_per_post"],
                                  "tidewatch_alerts": row["alerts"],
                                  "scan_only_cpu_us_per_post": floor["cpu_us_per_post"]}
        step(f"sweep {size}", sweep_one)

    peer_py = [sys.executable, str(ROOT / "perf" / "peer_python.py")]
    if not args.no_python:
        def py_scan():
            alerts_path = TMP / "peer-python-scan.alerts"
            r = run_peer(peer_py + ["scan", "--rules", rules, "--alerts", str(alerts_path),
                                    str(posts_file)], n)
            rows["python peer, file (like scan)"] = r
            cmp_["python peer, file"] = compare(ref or set(), alert_pairs_from_jsonl(
                alerts_path.read_text(encoding="utf-8").splitlines()))
        step("python peer, file", py_scan)

    jvm_cmd = None
    if not args.no_jvm:
        jvm_cmd, why = jvm_peer_cmd()
        if why:
            rows["jvm peer (Lucene MemoryIndex)"] = {"skipped": why}
        elif args.jvm_file:
            def jvm_scan():
                alerts_path = TMP / "peer-jvm-scan.alerts"
                r = run_peer(jvm_cmd + ["scan", rules_tsv, str(posts_file), str(alerts_path)], n)
                rows["jvm peer, file (like scan)"] = r
                cmp_["jvm peer, file"] = compare(ref or set(), alert_pairs_from_jsonl(
                    alerts_path.read_text(encoding="utf-8").splitlines()),
                    exclude_rules=r.get("rules_left_out", []))
            step("jvm peer, file", jvm_scan)

    if not args.no_kafka:
        kafka_rows(res, rows, cmp_, binary, rules, rules_tsv, posts, n, extra, cache_dir,
                   ref, peer_py if not args.no_python else None, jvm_cmd, step,
                   paced_n=args.paced_posts)

    shutil.rmtree(cache_dir, ignore_errors=True)
    out = Path(args.out)
    out.with_suffix(".json").write_text(scrub(json.dumps(res, indent=2, default=str)) + "\n")
    png = plot_sweep(res, ROOT / "perf" / "results" / "fair-sweep.png")
    res["plot"] = os.path.relpath(png, out.parent) if png else None
    out.write_text(scrub(render(res, args)))
    print(out.read_text())
    return 0


def kafka_rows(res, rows, cmp_, binary, rules, rules_tsv, posts, n, extra, cache_dir, ref,
               peer_py, jvm_cmd, step, paced_n=0):
    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    import harness

    broker, redis = harness.KafkaBroker(), harness.RedisServer()
    for server in (broker, redis):
        problem = server.prerequisites()
        if problem:
            rows["kafka rows"] = {"skipped": problem}
            return
    broker.start()
    redis.start()
    try:
        topic = "fair-posts-kcat"
        broker.create_topic(topic, 3)
        produce(broker, topic, posts)
        step("raw consume", lambda: rows.__setitem__("raw consume (kcat to /dev/null)",
                                                     row_kcat(broker, topic, n)))
        for tag, use_redis in (("memory", False), ("redis", True)):
            def tw_run(tag=tag, use_redis=use_redis):
                row, pairs = row_tidewatch_run(broker, binary, rules, posts, n,
                                               redis if use_redis else None, extra, cache_dir,
                                               tag, paced_posts=min(n, paced_n))
                rows[f"tidewatch run, {tag} store"] = row
                cmp_[f"tidewatch run, {tag} store"] = compare(ref or set(), pairs)
            step(f"tidewatch run {tag}", tw_run)

        def peer_run(name, cmd, tag, use_redis, exclude_key=None):
            redis.flushall()
            topic, alerts = f"fair-posts-{tag}", f"fair-alerts-{tag}"
            broker.create_topic(topic, 3)
            broker.create_topic(alerts, 3)
            r = run_peer(cmd(topic, alerts), n, redis_port=redis.port if use_redis else None,
                         on_ready=lambda: produce(broker, topic, posts))
            records = broker.consume_all(alerts)
            r.update(delays(broker, topic, records))
            rows[name] = r
            cmp_[name.split(" (")[0]] = compare(
                ref or set(), alert_pairs_from_jsonl([x.value.decode() for x in records]),
                exclude_rules=r.get("rules_left_out", []))
        if peer_py:
            step("python peer run", lambda: peer_run(
                "python peer, Kafka + Redis (like run)",
                lambda t, a: peer_py + ["run", "--rules", rules, "--brokers", broker.bootstrap,
                                        "--topic", t, "--group", "fair-python",
                                        "--alerts-topic", a, "--redis", redis.url,
                                        "--expect", str(n)], "python", True))
        if jvm_cmd:
            step("jvm peer run", lambda: peer_run(
                "jvm peer, Kafka (like run, no near-dup store)",
                lambda t, a: jvm_cmd + ["run", rules_tsv, broker.bootstrap, t, "fair-jvm", a,
                                        str(n)], "jvm", False))
    finally:
        broker.stop()
        redis.stop()


def scrub(text):
    """No build-machine paths in committed results."""
    text = text.replace(str(ROOT) + "/", "").replace(str(ROOT), ".")
    return re.sub(r"/tmp/[\w.-]+", "<tmp>", text)


def plot_sweep(res, path):
    """posts/s (from CPU per post) against patterns; the relative path, or None."""
    if len(res["sweep"]) < 2:
        return None
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    sizes = list(res["sweep"])
    xs = [int(s[:-1]) * 1000 for s in sizes]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("tidewatch_scan_cpu_us_per_post", "tidewatch scan"),
                       ("scan_only_cpu_us_per_post", "scan-only floor (Hyperscan)")):
        ax.plot(xs, [1e6 / res["sweep"][s][key] for s in sizes], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("patterns in the rule set")
    ax.set_ylabel("posts per CPU-second (one core)")
    ax.set_title(f"{res['posts']} real posts, CPU time")
    ax.legend()
    ax.grid(True, alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def machine():
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ver = lambda cmd: (subprocess.run(cmd, capture_output=True, text=True).stdout  # noqa: E731
                       .strip().splitlines() or [""])[0]
    return {"cpu": cpu, "cpus_online": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(), "redis": ver(["redis-server", "--version"]),
            "java": (subprocess.run(["java", "-version"], capture_output=True, text=True)
                     .stderr.splitlines() or [""])[0] if shutil.which("java") else "",
            "load_avg_at_start": os.getloadavg()}


def fmt(v, digits=1):
    return "" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))


def render(res, args):
    rows, n = res["rows"], res["posts"]
    tw = rows.get("tidewatch scan", {}).get("cpu_us_per_post")
    dec = rows.get("decode-only (C, Jansson)", {}).get("cpu_us_per_post")
    L = ["# Fair benchmark (issue 9, item 4)", "",
         f"Generated by `perf/bench_fair.py --posts {n} --ruleset {res['ruleset']}` "
         f"(one run; {time.strftime('%Y-%m-%d', time.gmtime())}). Raw numbers: "
         "`perf/RESULTS.json`.", "",
         "**All figures are CPU time** (user + system, every thread of the process), not wall "
         "time: the machine is shared with other jobs, so wall time is noise here. "
         "Per post = CPU seconds / posts.", "",
         f"Machine: {res['machine']['cpu']}, {res['machine']['cpus_online']} CPUs online, "
         f"kernel {res['machine']['kernel']}, {res['machine']['redis']}, "
         f"{res['machine']['java']}, Python {res['machine']['python']}; load average at start "
         f"{', '.join(f'{x:.1f}' for x in res['machine']['load_avg_at_start'])}.", "",
         f"Posts: {n} real posts (perf/fair_data.py: UMSAB 8-language sentiment, SMS spam "
         "collection, multilingual HateCheck; ar de en es fr hi it pt), the same for every row.",
         ""]
    st = res.get("ruleset_stats") or {}
    L += [f"Rules: `perf/build_ruleset.py` {res['ruleset']} set: {st.get('patterns')} patterns "
          f"= {st.get('regexes')} SpamAssassin regexes (one rule each) + "
          f"{st.get('profanity_keywords')} profanity keywords (one rule per language, "
          f"`langs:`) + {st.get('domains')} scam/phishing/malware domains (one rule per 1,000). "
          f"Dropped by calibration on other posts: {res.get('calibration_dropped')}.", ""]
    if res["tidewatch_args"]:
        L += [f"tidewatch extra arguments: `{' '.join(res['tidewatch_args'])}`", ""]
    L += ["## CPU per post", "",
          "| row | CPU µs/post | x tidewatch scan | x decode-only | alerts | peak RSS MiB | "
          "Redis CPU µs/post | Redis cmds/post | Redis bytes/post |",
          "|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        if "skipped" in r:
            L.append(f"| {name} | not measured: {r['skipped']} | | | | | | | |")
            continue
        c = r.get("cpu_us_per_post")
        L.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            name, fmt(c, 2), fmt(c / tw, 2) if c and tw else "", fmt(c / dec, 2) if c and dec
            else "", fmt(r.get("alerts", r.get("posts_hit"))), fmt(r.get("peak_rss_mib")),
            fmt(r.get("redis_cpu_us_per_post")), fmt(r.get("redis_commands_per_post")),
            fmt(r.get("redis_bytes_per_post"), 0)))
    red = rows.get("tidewatch run, redis store", {})
    mem = rows.get("tidewatch run, memory store", {})
    if red.get("cpu_us_per_post") and tw and dec:
        L += ["", "### Issue 9 targets, from the rows above", "",
              "| per post | measured | target |", "|---|---|---|",
              f"| Redis CPU | {fmt(red.get('redis_cpu_us_per_post'))} µs | <= 20 µs |",
              f"| Redis commands (scripts' inner calls counted) | "
              f"{fmt(red.get('redis_commands_per_post'))} | <= 6 |",
              f"| Redis memory held | {fmt(red.get('redis_bytes_per_post'), 0)} bytes | "
              "<= 300 bytes |",
              f"| worker CPU, `run` with Redis | {fmt(red['cpu_us_per_post'])} µs = "
              f"{fmt(red['cpu_us_per_post'] / dec, 2)}x decode-only | <= 3x decode-only |",
              f"| worker CPU, `run` (memory store) over `scan` | "
              f"{fmt(mem.get('cpu_us_per_post', 0) / tw, 2)}x | <= 1.2x |",
              f"| worker CPU, `run` (Redis) over `scan` | "
              f"{fmt(red['cpu_us_per_post'] / tw, 2)}x | <= 1.2x |"]
    L += ["", "## Produce-to-alert delay", "",
          "Alert CreateTime - post CreateTime (ms). *Backlog*: all N posts produced as fast as "
          "the producer goes right after readiness, so the delay is mostly queueing. *Paced*: "
          "then (tidewatch rows) posts produced at half the maximum rate the worker had just "
          "reached (posts/s over wall time, so under this machine's load), the issue's "
          "measurement.", "",
          "| row | max rate posts/s (wall) | backlog p50 | backlog p99 | paced rate posts/s | "
          "paced p50 | paced p99 |", "|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        if "delay_p50_ms" in r:
            L.append(f"| {name} | {fmt(r.get('max_rate_posts_per_s_wall'))} | "
                     f"{r['delay_p50_ms']} | {r['delay_p99_ms']} | "
                     f"{fmt(r.get('paced_rate_posts_per_s'))} | "
                     f"{fmt(r.get('paced_delay_p50_ms'))} | {fmt(r.get('paced_delay_p99_ms'))} |")
    L += ["", "scan-only's alert column is posts with any raw pattern hit (no word boundaries, "
          "no `langs:`), not alerts.", "",
          "## Alert sets against `tidewatch scan`", "",
          "A ratio means something only when the rows do the same work: each row's alerts "
          "as (post id, rule) pairs against `tidewatch scan`'s.", "",
          "| row | pairs | pairs (scan) | pair Jaccard | posts | posts (scan) | post Jaccard | "
          "rules left out of the comparison |", "|---|---|---|---|---|---|---|---|"]
    for name, c in res["compare"].items():
        L.append(f"| {name} | {c['pairs']} | {c['pairs_ref']} | {c['pairs_jaccard']} | "
                 f"{c['posts']} | {c['posts_ref']} | {c['posts_jaccard']} | "
                 f"{c['rules_excluded']} |")
    if res["sweep"]:
        L += ["", "## Patterns sweep (`tidewatch scan` and scan-only)", "",
              "| rule set | tidewatch scan µs/post | scan-only µs/post | tidewatch alerts |",
              "|---|---|---|---|"]
        for size, s in res["sweep"].items():
            L.append(f"| {size} | {fmt(s['tidewatch_scan_cpu_us_per_post'], 2)} | "
                     f"{fmt(s['scan_only_cpu_us_per_post'], 2)} | {s['tidewatch_alerts']} |")
        if res.get("plot"):
            L += ["", f"![posts per CPU-second against patterns]({res['plot']})"]
    profile = Path(__file__).resolve().parent / "results" / "profile-scan-10k.md"
    if profile.exists():
        L += ["", "## Per-post CPU (profile and cuts)", "",
              "Where `tidewatch scan`'s CPU goes on these posts and rules (perf profiles) and "
              "what each cut of issue 9 item 3 saved, measured build against build in one run: "
              "[results/profile-scan-10k.md](results/profile-scan-10k.md). The rows above "
              "predate those cuts unless their date says otherwise."]
    L += ["", "## What the peers do and do not do", "",
          "- **Python peer** (`perf/peer_python.py`): the same views as tidewatch (folded; "
          "skeleton with tidewatch's own confusables table, marks and Arabic forms), whole-word "
          "caseless keywords (boundaries checked on each Hyperscan match), regexes in `folded`, "
          "`langs:`, exact hash + datasketch MinHash LSH (100 permutations, 20 bands x 5, the "
          "same shingles, 50% signature check) in memory or Redis, one alert per flagged post. "
          "Differences: it drops every mark for ASCII keywords' skeleton (tidewatch keeps "
          "Spanish ñ, hence its few extra `profanity.es` hits), has no script guard, sees "
          "near-duplicates inside one batch only from the next batch on, and datasketch's Redis "
          "band keys carry no expiry.",
          "- **JVM peer** (`perf/peer_jvm`): Elasticsearch's percolator without Elasticsearch: "
          "one Lucene MemoryIndex per post (ICU tokenizer + ICU folding; plus the whole "
          "NFKC-casefolded text as one term), candidate keyword queries chosen by the terms "
          "the post contains (each phrase registered under its longest term), then each "
          "candidate run on the MemoryIndex; regexes as RegexpQuery `.*(re).*` over the "
          "whole-text term, run for every post as the percolator runs queries it cannot "
          "extract terms from. Lucene's regexp language has no `\\b`, anchors, lookaround, "
          "lazy quantifiers or `\\x` escapes: the regexes that use them are left out "
          "(their rules are removed from both sides of the comparison: see the last column "
          "above). No near-duplicate store (lucene-monitor, which would add nothing here, is "
          "not served by the registry). ICU folding drops every accent, unlike tidewatch. "
          "Its CPU includes JIT warm-up, as a freshly started worker's would.",
          "- **Floors** are not peers: scan-only compiles keywords without word boundaries "
          "and ignores `langs:`, so its hit count is larger; it bounds what Hyperscan itself "
          "costs on these texts.", ""]
    L += ["", "## How each row is measured", "", __doc__.split("Rows (")[1].split(
        "Writes OUT")[0].join(["```\nRows (", "```\n"]), ""]
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
