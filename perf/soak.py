#!/usr/bin/env python3
"""Soak: millions of posts through one `tidewatch run` with the Redis store (issue 12 item 7).

  python3 perf/soak.py [--posts 3000000] [--window-s 30] [--rate 4000] [--out FILE]

Starts a real single-node KRaft broker and a real redis-server on loopback (the integration
harness, tests/integration/harness.py; broker jars from scripts/fetch-kafka.sh), generates N
posts (real texts from ../shared/data/posts/posts_mixed.txt, else the committed sample
tests/fixtures/shared-sample; unique ids, near-duplicate waves, rule hits and a few
undecodable records), and produces them at a paced rate while one worker consumes them with
a short duplicate window, so that the Redis index fills and its epochs expire many times.
Every --sample-s seconds it records the worker's RSS, open file descriptors, threads and CPU,
Redis used_memory and keys, and the group's committed offsets.

At the end: the committed offsets reach the end of the input, the alerts are exactly the
posts `tidewatch scan` flags over the same file (all of them, compared by post id, none
twice), the dead letters are exactly the undecodable records, and the worker exits 0 on
SIGTERM. "Flat": over the samples after the warm-up (--warmup-s, default 3 windows: the index
holds an entry for one to 1.5 windows) until production ends, split in thirds, the maximum of
the last third against the maximum of the middle third, and a least-squares slope. Exit 1
when RSS grows more than --max-rss-growth (10 %), open fds grow at all, Redis used_memory
grows more than --max-redis-growth (25 %), or any end check fails; 77 when a prerequisite
(broker jars, java, redis-server, confluent-kafka, the binary) is missing.

Writes perf/results/soak.json (figures, samples; no build-machine paths), and soak.png
beside it when matplotlib is installed (perf/requirements.txt). tests/RELIABILITY.md, "Soak",
has the last results.
"""

import argparse
import json
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import harness  # noqa: E402  (the integration tests' broker and redis helpers)

DATA = Path(os.environ.get("TW_SHARED_DATA", ROOT.parent / "shared" / "data"))
SAMPLE = ROOT / "tests" / "fixtures" / "shared-sample"
RULES = ROOT / "examples" / "rules.yaml"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Phrases that hit live rules of examples/rules.yaml (not broad.prize: its flood guard mutes
# it above 20 % of the posts, which a soak must not depend on).
RULE_PHRASES = ["free giveaway", "double your bitcoin", "verify your account", "cheap meds",
                "buy followers", "wire transfer fee", "account suspended", "crypto giveaway"]


def log(msg):
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------
# the posts


def load_texts():
    """(texts, label): real post texts, one per line."""
    mixed = DATA / "posts" / "posts_mixed.txt"
    if mixed.is_file():
        path, label = mixed, "../shared/data/posts/posts_mixed.txt"
    else:
        path, label = (SAMPLE / "posts" / "posts_mixed.txt",
                       "tests/fixtures/shared-sample/posts/posts_mixed.txt")
    texts = [t for t in path.read_text(encoding="utf-8").split("\n") if t.strip()]
    return texts, label


def write_posts(path, n, seed, texts):
    """Writes n JSONL posts to path; returns {"bad": [ids of undecodable records], ...}.

    Ordinary posts are the real texts in order; from the second pass over them on, each
    text's words and those of another random text are shuffled together, so a pass does not
    repeat the previous one (it would be one long near-duplicate wave). Every 10,000 posts a wave starts: a real text of
    12 or more words posted 20-400 times by different authors with one word changed each
    time, interleaved with the rest (2 % of the posts are wave members while a wave is
    active). 1 % of the posts and a third of the waves carry a rule phrase. One record in
    50,000 is undecodable (truncated JSON or invalid UTF-8): a dead letter."""
    rng = random.Random(seed)
    long_texts = [t for t in texts if len(t.split()) >= 12] or texts
    waves = []
    stats = {"bad": [], "wave_posts": 0, "waves": 0, "rule_phrases": 0}
    normal = 0
    with open(path, "wb") as f:
        for i in range(n):
            pid = f"soak-{i}"
            if i % 50000 == 49999:
                if (i // 50000) % 2:
                    line = b'{"id":"%s","text":"cut off' % pid.encode()
                else:
                    line = b'{"id":"%s","text":"bad \xc3\x28 byte"}' % pid.encode()
                stats["bad"].append(pid)
                f.write(line + b"\n")
                continue
            if i % 10000 == 0:
                words = rng.choice(long_texts).split()
                if rng.random() < 0.33:
                    words.insert(rng.randrange(len(words) + 1), rng.choice(RULE_PHRASES))
                waves.append([words, rng.randint(20, 400)])
                stats["waves"] += 1
            if waves and rng.random() < 0.02:
                wave = rng.choice(waves)
                words = list(wave[0])
                k = rng.randrange(len(words))
                words[k] = rng.choice(texts).split()[0] if rng.random() < 0.5 else words[k].upper()
                text = " ".join(words)
                wave[1] -= 1
                if wave[1] <= 0:
                    waves.remove(wave)
                stats["wave_posts"] += 1
            else:
                text = texts[normal % len(texts)]
                if normal >= len(texts):
                    # With another real text's words, shuffled: a short text shuffled alone
                    # would repeat itself, a near-duplicate of the pass before whenever that
                    # pass is still in the window (the store would then grow with the rate).
                    words = text.split() + rng.choice(texts).split()
                    rng.shuffle(words)
                    text = " ".join(words)
                normal += 1
                if rng.random() < 0.01:
                    text = f"{text} {rng.choice(RULE_PHRASES)}"
                    stats["rule_phrases"] += 1
            doc = {"id": pid, "text": text, "author": f"u{rng.randrange(50000)}"}
            f.write(json.dumps(doc, ensure_ascii=False).encode() + b"\n")
    return stats


# ---------------------------------------------------------------------------------------
# sampling


def proc_figures(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return {"rss_kb": rss, "hwm_kb": hwm, "threads": threads, "fds": fds, "cpu_s": cpu}


def redis_info(client):
    text = client.command("INFO").decode()
    info = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            info[k] = v.strip()
    keys = 0
    if "db0" in info:
        keys = int(re.search(r"keys=(\d+)", info["db0"]).group(1))
    return {"redis_used_memory": int(info["used_memory"]),
            "redis_rss": int(info["used_memory_rss"]), "redis_keys": keys,
            "redis_expired_keys": int(info.get("expired_keys", 0))}


MALLOC_TOTAL = re.compile(rb"Total \(incl\. mmap\):\s+system bytes\s+=\s+(\d+)\s+"
                          rb"in use bytes\s+=\s+(\d+)")


def heap_figures(pid, stderr_path):
    """glibc's own count of the worker's heap (every arena and mmapped chunk): gdb attaches
    and calls malloc_stats(), which prints to the worker's stderr. Tells a leak (bytes in use
    grow) from allocator caching or fragmentation (RSS grows, bytes in use do not). The worker
    stops for the moment of the call."""
    before = os.path.getsize(stderr_path)
    try:
        subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "call (void)malloc_stats()"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    with open(stderr_path, "rb") as f:
        f.seek(before)
        m = MALLOC_TOTAL.search(f.read())
    return {"heap_system": int(m.group(1)), "heap_in_use": int(m.group(2))} if m else {}


class Sampler(threading.Thread):
    def __init__(self, broker, redis, worker_pid, group, topic, alerts_topic, every_s,
                 heap_every_s=0.0, worker_stderr=None):
        super().__init__(daemon=True)
        self.broker, self.worker_pid, self.every_s = broker, worker_pid, every_s
        # Not at t=0: one run hung there, gdb's call to malloc_stats() never returning while
        # the worker was starting its Kafka clients.
        self.heap_every_s, self.worker_stderr = heap_every_s, worker_stderr
        self.heap_at = heap_every_s
        self.topic, self.alerts_topic = topic, alerts_topic
        self.redis = redis.client()
        self.consumer = harness.Consumer(broker.client_config(**{
            "group.id": group, "enable.auto.commit": False}))
        self.parts = broker.partitions(topic)
        self.samples = []
        self.committed = 0
        self.produced = 0  # set by the producer
        self.stop_event = threading.Event()
        self.t0 = time.monotonic()
        self.error = None

    def committed_total(self):
        tps = [harness.TopicPartition(self.topic, p) for p in self.parts]
        got = self.consumer.committed(tps, timeout=15)
        return sum(max(tp.offset, 0) for tp in got)

    def high_total(self, topic):
        total = 0
        for p in self.broker.partitions(topic):
            _, high = self.consumer.get_watermark_offsets(harness.TopicPartition(topic, p),
                                                          timeout=10)
            total += high
        return total

    def sample(self):
        s = {"t": round(time.monotonic() - self.t0, 2)}
        s.update(proc_figures(self.worker_pid))
        s.update(redis_info(self.redis))
        self.committed = self.committed_total()
        s["produced"] = self.produced
        s["committed"] = self.committed
        s["alerts"] = self.high_total(self.alerts_topic)
        if self.heap_every_s and s["t"] >= self.heap_at:
            self.heap_at = s["t"] + self.heap_every_s
            s.update(heap_figures(self.worker_pid, self.worker_stderr))
        self.samples.append(s)
        return s

    def run(self):
        next_at = time.monotonic()
        while not self.stop_event.is_set():
            try:
                s = self.sample()
                if len(self.samples) % 6 == 1:
                    log(f"t={s['t']:.0f}s produced={s['produced']} committed={s['committed']} "
                        f"rss={s['rss_kb'] / 1024:.1f}MiB fds={s['fds']} "
                        f"threads={s['threads']} cpu={s['cpu_s']:.0f}s "
                        f"redis={s['redis_used_memory'] / 2**20:.1f}MiB keys={s['redis_keys']}")
            except Exception as exc:  # noqa: BLE001 - the worker may have exited; say so
                self.error = repr(exc)
                return
            next_at += self.every_s
            self.stop_event.wait(max(0.0, next_at - time.monotonic()))

    def close(self):
        self.stop_event.set()
        self.join(timeout=60)
        self.consumer.close()
        self.redis.close()


def produce_paced(broker, topic, posts_file, n, rate, max_lag, sampler, worker):
    """Produces the lines of posts_file (key = line number) at about `rate` per second,
    waiting while more than max_lag records are produced but not committed."""
    producer = harness.Producer(broker.client_config(**{
        "acks": "all", "enable.idempotence": True, "linger.ms": 20,
        "batch.num.messages": 10000, "queue.buffering.max.messages": 200000}))
    errors = []

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(err)

    start = time.monotonic()
    sent = 0
    with open(posts_file, "rb") as f:
        for line in f:
            while True:
                try:
                    producer.produce(topic, value=line.rstrip(b"\n"), key=b"%d" % sent,
                                     on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.05)
            sent += 1
            if sent % 1000 == 0:
                producer.poll(0)
                sampler.produced = sent
                ahead = start + sent / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
                while sent - sampler.committed > max_lag:
                    if worker.poll() is not None:
                        raise RuntimeError(f"worker exited with {worker.returncode}")
                    producer.poll(0.2)
    remaining = producer.flush(120)
    sampler.produced = sent
    if remaining or errors:
        raise RuntimeError(f"produce: {remaining} not delivered, errors {errors[:5]}")
    return sent, time.monotonic() - start


# ---------------------------------------------------------------------------------------
# analysis


def slope_per_min(points):
    """Least-squares slope of (t seconds, y) in y per minute."""
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return 60.0 * sum((t - mt) * (y - my) for t, y in points) / var


def flatness(samples, t_from, t_to, key):
    steady = [s for s in samples if t_from <= s["t"] <= t_to]
    if len(steady) < 6:
        return None
    third = (t_to - t_from) / 3
    middle = [s[key] for s in steady if t_from + third <= s["t"] < t_from + 2 * third]
    last = [s[key] for s in steady if s["t"] >= t_from + 2 * third]
    first = [s[key] for s in steady if s["t"] < t_from + third]
    mean = sum(s[key] for s in steady) / len(steady)
    slope = slope_per_min([(s["t"], s[key]) for s in steady])
    return {"max_first_third": max(first), "max_middle_third": max(middle),
            "max_last_third": max(last), "min": min(s[key] for s in steady),
            "growth_last_vs_middle": (max(last) / max(middle) - 1) if max(middle) else 0.0,
            "slope_per_min": slope,
            "slope_pct_per_10min": (100 * 10 * slope / mean) if mean else 0.0}


def plot(samples, marks, path, title):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    t = [s["t"] / 60 for s in samples]
    fig, ax = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    ax[0].plot(t, [s["rss_kb"] / 1024 for s in samples], label="worker RSS (MiB)")
    heap = [s for s in samples if "heap_in_use" in s]
    if heap:
        ax[0].plot([s["t"] / 60 for s in heap], [s["heap_in_use"] / 2**20 for s in heap],
                   marker=".", color="tab:purple", label="worker heap in use (MiB, glibc)")
    ax[0].set_ylabel("MiB")
    ax[0].set_ylim(bottom=0)
    ax[1].plot(t, [s["redis_used_memory"] / 2**20 for s in samples], color="tab:red",
               label="Redis used_memory (MiB)")
    ax[1].set_ylabel("MiB")
    ax[2].plot(t, [s["committed"] / 1e6 for s in samples], color="tab:green",
               label="committed (M posts)")
    ax[2].plot(t, [s["produced"] / 1e6 for s in samples], color="tab:gray", linestyle=":",
               label="produced (M posts)")
    ax[2].set_xlabel("minutes since the worker started")
    for a in ax:
        for name, when in marks.items():
            a.axvline(when / 60, color="black", linewidth=0.6, linestyle="--")
        a.legend(loc="upper left")
        a.grid(alpha=0.3)
    ax[0].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return True


def plot_title(result):
    return (f"tidewatch soak: {result['posts']:,} posts, dedup window {result['window_s']} s "
            f"(dashed: steady part)")


def replot(json_path, png_path):
    result = json.loads(Path(json_path).read_text())
    marks = {"steady from": result["steady_from_t"], "production ends": result["steady_to_t"]}
    return plot(result["samples"], marks, png_path, plot_title(result))


# ---------------------------------------------------------------------------------------
# the run


def scan_expectation(binary, posts_file, window_s):
    """{post ids `scan` alerts on}, {post id: dead-letter reason}."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        rc = subprocess.call([binary, "scan", "--rules", str(RULES), "-X",
                              f"dedup.window_s={window_s}", posts_file], stdout=out, stderr=err)
        if rc != 0:
            err.seek(0)
            raise RuntimeError(f"scan exited {rc}: {err.read()[-2000:]!r}")
        out.seek(0)
        alerted = set()
        for line in out:
            alerted.add(json.loads(line)["post_id"])
        err.seek(0)
        dead = {}
        lines = None
        for line in err:
            if line.startswith(b'{"dead_letter"'):
                dl = json.loads(line)["dead_letter"]
                dead[dl["line"]] = dl["reason"]
        if dead:
            want = set(dead)
            lines = {}
            with open(posts_file, "rb") as f:
                for number, line in enumerate(f, 1):
                    if number in want:
                        lines[number] = re.match(rb'\{"id":"([^"]+)"', line).group(1).decode()
        return alerted, {lines[k]: v for k, v in dead.items()}


def read_topic_ids(broker, topic, count):
    """[(key, value, headers)] of every record of topic (expects at least count)."""
    return broker.consume_all(topic, expected_count=count, timeout=600)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--posts", type=int, default=3_000_000)
    ap.add_argument("--window-s", type=int, default=30, help="dedup.window_s of the worker")
    ap.add_argument("--rate", type=float, default=4000, help="producer rate cap, posts/s")
    ap.add_argument("--max-lag", type=int, default=100_000,
                    help="produced but not committed records the producer allows")
    ap.add_argument("--sample-s", type=float, default=5.0)
    ap.add_argument("--warmup-s", type=float, help="default: 3 windows")
    ap.add_argument("--heap-s", type=float, default=0.0,
                    help="every so many seconds, glibc's heap figures through gdb (0 = never; "
                         "a diagnosis aid: it stops the worker for each call, and a call can hang)")
    ap.add_argument("--seed", type=int, default=20261202)
    ap.add_argument("--max-rss-growth", type=float, default=0.10)
    ap.add_argument("--max-redis-growth", type=float, default=0.25)
    ap.add_argument("--out", default=str(ROOT / "perf" / "results" / "soak.json"))
    ap.add_argument("--png", help="default: the --out path with .png")
    ap.add_argument("--replot", action="store_true",
                    help="only redraw the PNG from the --out JSON of an earlier run")
    args = ap.parse_args()
    if args.replot:
        png = Path(args.png) if args.png else Path(args.out).with_suffix(".png")
        return 0 if replot(args.out, png) else 77
    warmup = args.warmup_s if args.warmup_s is not None else 3 * args.window_s

    binary = os.environ.get("TIDEWATCH_BIN", str(ROOT / "build" / "tidewatch"))
    problems = [p for p in (harness.KafkaBroker.prerequisites(),
                            harness.RedisServer.prerequisites()) if p]
    if not os.access(binary, os.X_OK):
        problems.append(f"no tidewatch binary at {binary} (build it or set TIDEWATCH_BIN)")
    if problems:
        print("SKIP: " + "; ".join(problems))
        return 77

    texts, texts_label = load_texts()
    work = Path(tempfile.mkdtemp(prefix="tw-soak-"))
    posts_file = str(work / "posts.jsonl")
    t_gen = time.monotonic()
    stats = write_posts(posts_file, args.posts, args.seed, texts)
    log(f"{args.posts} posts written in {time.monotonic() - t_gen:.0f}s "
        f"({os.path.getsize(posts_file) / 2**20:.0f} MiB; {stats['waves']} waves, "
        f"{stats['wave_posts']} wave posts, {len(stats['bad'])} undecodable)")

    broker, redis = harness.KafkaBroker(), harness.RedisServer()
    worker = None
    sampler = None
    failures = []
    result = {"posts": args.posts, "window_s": args.window_s, "rate_cap": args.rate,
              "max_lag": args.max_lag, "sample_s": args.sample_s, "warmup_s": warmup,
              "seed": args.seed, "texts": texts_label, "distinct_texts": len(texts),
              "rules": "examples/rules.yaml", "cpus": os.cpu_count(),
              "waves": stats["waves"], "wave_posts": stats["wave_posts"],
              "rule_phrases_added": stats["rule_phrases"], "undecodable": len(stats["bad"])}
    try:
        broker.start()
        redis.start()
        # As docs/DEDUP.md tells operators: an expiring epoch hash is freed off the main thread.
        redis.command("CONFIG", "SET", "lazyfree-lazy-expire", "yes")
        try:
            result["redis_version"] = redis.command("INFO", "server").decode().split(
                "redis_version:")[1].split()[0]
        except Exception:  # noqa: BLE001 - a label only
            pass
        topic, alerts, dlq, camp = "soak-posts", "soak-alerts", "soak-dlq", "soak-campaigns"
        group = "soak"
        broker.create_topics([topic, alerts], partitions=3)
        broker.create_topics([dlq, camp], partitions=1)
        cmd = [binary, "run", "--brokers", broker.bootstrap, "--group", group,
               "--input-topic", topic, "--output-topic", alerts, "--dlq-topic", dlq,
               "--rules", str(RULES), "--redis", redis.url,
               "-X", f"dedup.window_s={args.window_s}", "-X", "campaign.milestones=10,100",
               "-X", f"campaign.topic={camp}", "-X", "batch_size=1000"]
        result["worker_args"] = ["run", "--redis", "redis://127.0.0.1:PORT/0", "-X",
                                 f"dedup.window_s={args.window_s}", "-X",
                                 "campaign.milestones=10,100", "-X", "batch_size=1000"]
        worker_log = open(work / "worker.stderr", "wb")
        # TW_SOAK_WRAP="heaptrack -o FILE": the worker under a tool (the figures are then the
        # tool's process, not the worker's; for finding what grows, not for the table).
        cmd = shlex.split(os.environ.get("TW_SOAK_WRAP", "")) + cmd
        worker = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=worker_log,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
        sampler = Sampler(broker, redis, worker.pid, group, topic, alerts, args.sample_s,
                          args.heap_s, work / "worker.stderr")
        sampler.start()
        sent, produce_s = produce_paced(broker, topic, posts_file, args.posts, args.rate,
                                        args.max_lag, sampler, worker)
        t_produced = time.monotonic() - sampler.t0
        log(f"produced {sent} in {produce_s:.0f}s ({sent / produce_s:.0f}/s)")
        deadline = time.monotonic() + 900
        while sampler.committed < sent:
            if worker.poll() is not None:
                raise RuntimeError(f"worker exited with {worker.returncode}")
            if sampler.error:
                raise RuntimeError(f"sampler: {sampler.error}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"commits stuck at {sampler.committed} of {sent}")
            time.sleep(1)
        t_done = time.monotonic() - sampler.t0
        log(f"all {sent} committed at t={t_done:.0f}s")
        # A few samples more: the epochs of the last posts expiring, the worker idle.
        time.sleep(min(2 * args.window_s, 60))
        sampler.close()
        samples = sampler.samples
        # The whole process group (the worker leads it): a TW_SOAK_WRAP tool's child too.
        # TW_SOAK_STOP_SIGNAL=KILL keeps the heap as it was for the tool (not a graceful stop).
        os.killpg(worker.pid, getattr(signal, "SIG" + os.environ.get("TW_SOAK_STOP_SIGNAL",
                                                                     "TERM")))
        try:
            rc = worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            rc = "timeout"
        result["worker_exit_on_sigterm"] = rc
        if rc != 0:
            failures.append(f"worker exit on SIGTERM: {rc}")

        # -- end checks -----------------------------------------------------------------
        high = broker.high_watermarks(topic)
        committed = broker.committed_offsets(group, topic)
        result["committed_at_end"] = all(committed[p] == h for p, h in high.items())
        if not result["committed_at_end"]:
            failures.append(f"committed {committed} != end {high}")
        t_scan = time.monotonic()
        want_alerts, want_dead = scan_expectation(binary, posts_file, args.window_s)
        result["scan_s"] = round(time.monotonic() - t_scan, 1)
        got = read_topic_ids(broker, alerts, len(want_alerts))
        got_ids = [r.json()["post_id"] for r in got]
        dup_info = sum(1 for r in got if (r.json().get("duplicate") or {}).get("count", 0) > 1)
        result["alerts"] = len(got_ids)
        result["alerts_expected_by_scan"] = len(want_alerts)
        result["alerts_with_duplicate_count_gt1"] = dup_info
        missing = want_alerts - set(got_ids)
        unexpected = set(got_ids) - want_alerts
        twice = len(got_ids) - len(set(got_ids))
        result.update(alerts_missing=len(missing), alerts_unexpected=len(unexpected),
                      alerts_twice=twice)
        if missing or unexpected or twice:
            failures.append(f"alerts: {len(missing)} missing (e.g. {sorted(missing)[:3]}), "
                            f"{len(unexpected)} unexpected (e.g. {sorted(unexpected)[:3]}), "
                            f"{twice} twice")
        dead = read_topic_ids(broker, dlq, len(want_dead))
        got_dead = {}
        for r in dead:
            got_dead.setdefault(r.value.split(b'"')[3].decode("utf-8", "replace"),
                                []).append(r.header("reason"))
        result["dead_letters"] = len(dead)
        result["dead_letters_expected"] = len(stats["bad"])
        want_reasons = {k: [v] for k, v in want_dead.items()}
        if got_dead != want_reasons or set(want_dead) != set(stats["bad"]):
            failures.append(f"dead letters differ from scan's: got {len(dead)}, "
                            f"scan {len(want_dead)}, generated {len(stats['bad'])}")
        result["campaign_records"] = broker.message_count(camp)

        # -- flatness -------------------------------------------------------------------
        first_commit = next((s["t"] for s in samples if s["committed"] > 0), 0.0)
        t_from, t_to = first_commit + warmup, t_produced
        result.update(duration_s=round(t_done, 1), produce_s=round(produce_s, 1),
                      posts_per_s=round(sent / (t_done - first_commit), 1),
                      first_commit_t=first_commit, steady_from_t=round(t_from, 1),
                      steady_to_t=round(t_to, 1))
        if t_to - t_from < 6 * args.sample_s:
            failures.append(f"too short to judge: steady part {t_to - t_from:.0f}s")
        else:
            for key in ("rss_kb", "fds", "threads", "redis_used_memory", "redis_keys"):
                result[f"flat_{key}"] = flatness(samples, t_from, t_to, key)
            heap = [s for s in samples if "heap_in_use" in s]
            if len(heap) >= 6:
                result["flat_heap_in_use"] = flatness(heap, t_from, t_to, "heap_in_use")
                result["heap_in_use_after_window"] = min(
                    heap, key=lambda s: abs(s["t"] - t_from))["heap_in_use"]
                result["heap_in_use_end"] = heap[-1]["heap_in_use"]
            rss, fds = result["flat_rss_kb"], result["flat_fds"]
            red = result["flat_redis_used_memory"]
            if rss["growth_last_vs_middle"] > args.max_rss_growth:
                failures.append(f"RSS grows {100 * rss['growth_last_vs_middle']:.1f} %")
            if fds["max_last_third"] > fds["max_middle_third"]:
                failures.append(f"fds grow: {fds['max_middle_third']} -> {fds['max_last_third']}")
            if red["growth_last_vs_middle"] > args.max_redis_growth:
                failures.append(f"Redis memory grows {100 * red['growth_last_vs_middle']:.1f} %")
        at = lambda t: min(samples, key=lambda s: abs(s["t"] - t))  # noqa: E731
        result["rss_kb_start"] = samples[0]["rss_kb"]
        result["rss_kb_after_window"] = at(t_from)["rss_kb"]
        result["rss_kb_end_of_production"] = at(t_to)["rss_kb"]
        result["rss_kb_end"] = samples[-1]["rss_kb"]
        result["rss_kb_peak"] = max(s["hwm_kb"] for s in samples)
        result["fds_start"], result["fds_end"] = samples[0]["fds"], samples[-1]["fds"]
        result["fds_max"] = max(s["fds"] for s in samples)
        result["threads_max"] = max(s["threads"] for s in samples)
        result["worker_cpu_s"] = samples[-1]["cpu_s"]
        result["redis_used_memory_max"] = max(s["redis_used_memory"] for s in samples)
        result["redis_used_memory_end"] = samples[-1]["redis_used_memory"]
        result["redis_keys_end"] = samples[-1]["redis_keys"]
        result["redis_expired_keys"] = samples[-1]["redis_expired_keys"]
        result["failures"] = failures
        result["samples"] = samples
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
        png = Path(args.png) if args.png else out.with_suffix(".png")
        if plot(samples, {"steady from": t_from, "production ends": t_to}, png,
                plot_title(result)):
            log(f"wrote {png.name}")
        summary = {k: v for k, v in result.items() if k != "samples"}
        print(json.dumps(summary, indent=1))
    except Exception as exc:  # noqa: BLE001 - report with the worker's log tail
        failures.append(f"{type(exc).__name__}: {exc}")
        print(harness.tail(work / "worker.stderr", 30), file=sys.stderr)
    finally:
        if sampler is not None and sampler.is_alive():
            sampler.close()
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait()
        broker.stop()
        redis.stop()
    if failures:
        print("FAIL:\n  " + "\n  ".join(failures))
        print(f"(worker log and posts kept in {work})")
        return 1
    import shutil
    shutil.rmtree(work, ignore_errors=True)
    print("ok: soak")
    return 0


if __name__ == "__main__":
    sys.exit(main())
