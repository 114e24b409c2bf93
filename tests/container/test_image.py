"""The image as users get it (scripts/test-container.sh builds it; ctest `container`).

Everything runs in containers of the real image with the security context and volumes of
deploy/kubernetes/base/deployment.yaml (read from there, not restated here): non-root user,
read-only root filesystem with only the manifests' emptyDir tmpfs writable, no capabilities,
no privilege escalation. `run` works against the suite's real Kafka broker and redis-server
over the host network, with the manifests' configuration (deploy/kubernetes/base/config.yaml,
mounted where the ConfigMap goes) and is stopped the way the kubelet stops it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from harness import FIXTURES, free_port, scaled, unique_name, wait_until

SOURCE_DIR = Path(os.environ.get("TW_SOURCE_DIR") or Path(__file__).resolve().parents[2])
BASE = SOURCE_DIR / "deploy" / "kubernetes" / "base"
BINARY = "/usr/local/bin/tidewatch"
MAX_IMAGE_BYTES = 150 * 1000 * 1000  # 150 MB
EXPECTED_UID = 10001


def _text(res) -> str:
    return (res.stdout + res.stderr).decode("utf-8", "replace")


def _world_readable_dir() -> Path:
    """A host folder the container's user (another UID) can read: pytest's tmp_path is 0700."""
    d = Path(tempfile.mkdtemp(prefix="tw-ctr-"))
    d.chmod(0o755)
    return d


def _copy_readable(src: Path, dst: Path):
    shutil.copytree(src, dst) if src.is_dir() else shutil.copy(src, dst)
    for p in [dst, *dst.rglob("*")] if dst.is_dir() else [dst]:
        p.chmod(0o755 if p.is_dir() else 0o644)


# ---------------------------------------------------------------------------------------
# the image itself


def test_user_is_not_root(engine, pod):
    assert engine.inspect("{{.Config.User}}") == str(EXPECTED_UID)
    res = engine("run", "--rm", "--network", "none", "--entrypoint", "id", engine.image)
    assert res.returncode == 0, _text(res)
    assert re.match(rf"uid={EXPECTED_UID}\b", res.stdout.decode()), _text(res)
    # the manifests run the same user the image declares (files owned by it stay usable)
    assert pod.pod_security.get("runAsNonRoot") is True
    assert int(pod._setting("runAsUser")) == EXPECTED_UID


def test_image_size(engine):
    size = int(engine.inspect("{{.Size}}"))
    print(f"image size {size} bytes")
    assert size <= MAX_IMAGE_BYTES, f"image is {size / 1e6:.1f} MB, over {MAX_IMAGE_BYTES / 1e6:.0f} MB"


def test_every_shared_library_is_in_the_image(engine):
    res = engine("run", "--rm", "--network", "none", "--entrypoint", "ldd", engine.image, BINARY)
    out = _text(res)
    missing = [line.strip() for line in out.splitlines() if "not found" in line]
    assert not missing, "libraries the binary needs are not in the final stage:\n" + "\n".join(missing)
    assert res.returncode == 0, out
    assert "librdkafka" in out and "libhs" in out, out


def test_root_filesystem_is_read_only_except_the_manifests_tmpfs(engine, pod):
    assert pod.security.get("readOnlyRootFilesystem") is True
    mounts = pod.tmpfs_mounts()
    assert mounts, "the manifests declare no emptyDir: where does the rules cache go?"
    writes = " && ".join(f"touch {path}/tw-probe" for path, _ in mounts)
    script = f"{writes} && if touch /usr/local/bin/tw-probe 2>/dev/null; then echo ROOT-WRITABLE; fi; " \
             "if touch /var/tmp/tw-probe 2>/dev/null; then echo VARTMP-WRITABLE; fi; echo done"
    res = engine("run", "--rm", "--network", "none", *pod.options(engine),
                 "--entrypoint", "/bin/sh", engine.image, "-c", script)
    out = _text(res)
    assert res.returncode == 0, out
    assert "done" in out and "WRITABLE" not in out, out


def test_version(engine, pod):
    res = engine("run", "--rm", "--network", "none", *pod.options(engine), engine.image, "--version")
    assert res.returncode == 0, _text(res)
    assert re.match(rb"tidewatch \d+\.\d+", res.stdout), _text(res)


def test_demo(engine, pod):
    """The demo end to end inside the image (in-process broker, the example rules it ships)."""
    res = engine("run", "--rm", "--network", "none", *pod.options(engine), engine.image, "demo",
                 timeout=180)
    out = _text(res)
    assert res.returncode == 0, out
    assert re.search(r"ALERT demo-15 .*scam\.giveaway\[high\]", out), out[-3000:]
    assert re.search(r"dead letters +3", out), out[-3000:]
    assert '"level":"error"' not in out, out[-3000:]


def test_config_docs(engine, pod):
    res = engine("run", "--rm", "--network", "none", *pod.options(engine), engine.image,
                 "config", "docs")
    assert res.returncode == 0, _text(res)
    assert res.stdout.decode() == (SOURCE_DIR / "docs" / "CONFIG.md").read_text(), \
        "`config docs` in the image differs from docs/CONFIG.md"


def test_stop_signal_is_the_one_the_worker_drains_on(engine):
    """The kubelet (and docker/podman stop) send the image's STOPSIGNAL; the worker drains on
    SIGTERM."""
    assert engine.inspect("{{.Config.StopSignal}}") in ("", "SIGTERM", "15", "<no value>")


# ---------------------------------------------------------------------------------------
# `run` against a real broker and redis-server

# Posts with the rules of tests/fixtures/integration/rules.yaml they hit (by hand).
POSTS = [
    ("p-giveaway", "Free giveaway today, double your bitcoin now", {"scam.giveaway"}),
    ("p-send", "just send 2 btc to the address below", {"scam.giveaway"}),
    ("p-phish", "Your account suspended: verify your account at once", {"phishing.credentials"}),
    ("p-malware", "new player at http://files.example.net/get/player.exe enjoy", {"malware.link"}),
    ("p-profanity", "Frak, the build broke again", {"profanity.mild"}),
    ("p-two", "click here to verify your account", {"spam.promo", "phishing.credentials"}),
    ("p-clean-1", "Lovely weather for a walk by the river this morning", set()),
    ("p-clean-2", "The committee meets on Tuesday to discuss the library budget", set()),
    ("p-clean-3", "fracking and smegma are not the words of the profanity rule", set()),
]
# A campaign: the same long text from three authors, in order on one partition.
CAMPAIGN_TEXT = ("Limited offer for our valued readers: the spring catalogue ships this week "
                 "with forty new titles, free delivery on orders over twenty euros and a "
                 "reading lamp for the first hundred subscribers")
CAMPAIGN = [(f"camp-{n}", f"author-{n}") for n in (1, 2, 3)]
BAD = [("bad-json", b"{not json"), ("bad-no-text", b'{"id": "x"}')]


def _http_get(port: int, path: str):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


class Container:
    """A detached container seen as harness.wait_until sees a worker process (poll,
    returncode, describe), so waits end at once when it exits."""

    def __init__(self, engine, name: str):
        self.engine, self.name = engine, name
        self.returncode = None

    def poll(self):
        state = self.engine("inspect", "-f", "{{.State.Running}} {{.State.ExitCode}}", self.name)
        running, _, code = state.stdout.decode().strip().partition(" ")
        if state.returncode == 0 and running == "false":
            self.returncode = int(code)
        return self.returncode

    def logs(self) -> str:
        return _text(self.engine("logs", self.name))

    def describe(self, lines: int = 40) -> str:
        tail = "\n".join(self.logs().splitlines()[-lines:])
        return f"container {self.name} ({self.engine.image})\n--- log tail ---\n{tail}"


def test_run_against_kafka_and_redis(engine, pod, kafka, redis):
    redis.flushall()
    topics = {name: unique_name(f"ctr-{name}") for name in ("posts", "alerts", "dlq")}
    kafka.create_topics(topics.values(), partitions=3)
    group = unique_name("ctr-group")
    base_ts = int(time.time())
    messages = [(pid, json.dumps({"id": pid, "text": text, "author": f"a-{pid}",
                                  "ts": base_ts + i}).encode(), i % 3)
                for i, (pid, text, _) in enumerate(POSTS)]
    messages += [(pid, json.dumps({"id": pid, "text": CAMPAIGN_TEXT, "author": author,
                                   "ts": base_ts + 100 + n}).encode(), 0)
                 for n, (pid, author) in enumerate(CAMPAIGN)]
    messages += [(key, raw, 1) for key, raw in BAD]
    kafka.produce(topics["posts"], messages)
    flagged = [p for p in POSTS if p[2]] + CAMPAIGN

    # The ConfigMaps: deploy's config.yaml as the ConfigMap delivers it; the suite's rules
    # as the rules folder. What differs here (addresses, names) comes as environment
    # variables, the way the overlays pass secrets.
    config_dir, rules_dir = _world_readable_dir(), _world_readable_dir()
    _copy_readable(BASE / "config.yaml", config_dir / "config.yaml")
    _copy_readable(FIXTURES / "rules.yaml", rules_dir / "rules.yaml")
    _copy_readable(FIXTURES / "lists", rules_dir / "lists")
    port = free_port()
    env = dict(pod.env)
    env.update(TIDEWATCH_BROKERS=kafka.bootstrap, TIDEWATCH_GROUP=group,
               TIDEWATCH_INPUT_TOPIC=topics["posts"], TIDEWATCH_OUTPUT_TOPIC=topics["alerts"],
               TIDEWATCH_DLQ_TOPIC=topics["dlq"], TIDEWATCH_REDIS=redis.url,
               TIDEWATCH_HTTP=f"127.0.0.1:{port}")
    name = unique_name("tw-ctr")
    options = pod.options(engine, {"tidewatch-config": config_dir, "tidewatch-rules": rules_dir})
    env_opts = [opt for k, v in env.items() for opt in ("-e", f"{k}={v}")]
    started = engine("run", "-d", "--name", name, "--network", "host", *options, *env_opts,
                     engine.image, *pod.args)
    assert started.returncode == 0, _text(started)

    ctr = Container(engine, name)
    try:
        wait_until(lambda: _http_get(port, pod.readiness_path)[0] == 200, scaled(90),
                   f"{pod.readiness_path} 200", interval=0.5, proc=ctr)
        kafka.wait_for_messages(topics["alerts"], len(flagged), timeout=120, proc=ctr)
        kafka.wait_for_messages(topics["dlq"], len(BAD), timeout=60, proc=ctr)
        status, body = _http_get(port, pod.readiness_path)
        assert status == 200, body

        # the way the kubelet stops it: the stop signal, SIGKILL after the grace period
        t0 = time.monotonic()
        stopped = engine("stop", "-t", str(pod.grace_s), name, timeout=pod.grace_s + 60)
        took = time.monotonic() - t0
        assert stopped.returncode == 0, _text(stopped)
        code = engine("inspect", "-f", "{{.State.ExitCode}}", name).stdout.decode().strip()
        assert code == "0", f"exit code {code} after {took:.1f}s (grace {pod.grace_s}s)\n{ctr.describe()}"
        assert took < pod.grace_s, f"stop took {took:.1f}s: SIGKILLed at the grace period?"
        worker_log = ctr.logs()
    finally:
        engine("rm", "-f", name)
        shutil.rmtree(config_dir, ignore_errors=True)
        shutil.rmtree(rules_dir, ignore_errors=True)

    # alerts, read back with an independent client
    alerts = {}
    for rec in kafka.consume_all(topics["alerts"], expected_count=len(flagged), timeout=60):
        a = rec.json()
        assert a["post_id"] not in alerts, f"two alerts for {a['post_id']}"
        alerts[a["post_id"]] = a
    want = {pid: rules for pid, _, rules in POSTS if rules}
    want.update({pid: {"spam.promo"} for pid, _ in CAMPAIGN})
    got = {pid: {m["rule"] for m in a["matches"]} for pid, a in alerts.items()}
    assert got == want
    assert all(a["rules_version"].startswith("sha256:") for a in alerts.values())

    # duplicates through the real redis-server
    assert alerts["camp-1"]["duplicate"] is None, alerts["camp-1"]
    for n in (2, 3):
        dup = alerts[f"camp-{n}"]["duplicate"]
        assert dup and (dup["count"], dup["authors"]) == (n, n), dup
    assert redis.dbsize() > 0

    dead = kafka.consume_all(topics["dlq"], expected_count=len(BAD), timeout=60)
    assert sorted(r.key.decode() for r in dead) == sorted(k for k, _ in BAD)

    # the drain committed everything it consumed
    committed = kafka.committed_offsets(group, topics["posts"])
    assert committed == kafka.high_watermarks(topics["posts"]), worker_log[-4000:]
    assert '"level":"error"' not in worker_log, worker_log[-4000:]

