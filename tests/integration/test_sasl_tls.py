"""The worker against a broker that requires SASL/SCRAM-SHA-512 over TLS (issue #5), the way
production runs it: config file with `kafka.*` passthrough, the password only in the
environment (TIDEWATCH_KAFKA__SASL_PASSWORD, as a Kubernetes secretKeyRef would set it), the
broker's CA in ssl.ca.location with hostname verification on.

A private KRaft broker (subclass of harness.KafkaBroker; the shared session broker is not
touched) gets a self-signed certificate from keytool, SCRAM credentials from
`StorageTool format --add-scram`, a SASL_SSL listener for the worker and a PLAINTEXT listener
for the test's own admin, producer and reader.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from harness import (FIXTURES, LOG4J_PROPERTIES, KafkaBroker, free_port, java_binary,
                     missing_prerequisite, random_cluster_id, run_tidewatch, scaled, tail,
                     unique_name, wait_until)

USER, PASSWORD = "tidewatch", "s3cr3t-scram-pw"
ADMIN_USER, ADMIN_PASSWORD = "admin", "admin-scram-pw"
STORE_PASS = "changeit-tw"


class SaslTlsBroker(KafkaBroker):
    """KafkaBroker with a SASL_SSL (SCRAM-SHA-512) listener for clients besides the PLAINTEXT
    one the harness's helpers use (self.bootstrap)."""

    def _start_once(self):
        self.dir = Path(tempfile.mkdtemp(prefix="tw-kafka-sasl-"))
        ports = set()
        while len(ports) < 3:
            ports.add(free_port())
        self.port, self.sasl_port, self.controller_port = sorted(ports)
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.sasl_bootstrap = f"127.0.0.1:{self.sasl_port}"
        keystore = self.dir / "broker.p12"
        self.ca_pem = self.dir / "ca.pem"
        keytool = shutil.which("keytool")
        subprocess.run([keytool, "-genkeypair", "-alias", "broker", "-keyalg", "RSA",
                        "-keysize", "2048", "-validity", "2", "-dname", "CN=127.0.0.1",
                        "-ext", "SAN=IP:127.0.0.1,DNS:localhost", "-storetype", "PKCS12",
                        "-keystore", str(keystore), "-storepass", STORE_PASS,
                        "-keypass", STORE_PASS], check=True, capture_output=True, timeout=120)
        subprocess.run([keytool, "-exportcert", "-rfc", "-alias", "broker", "-keystore",
                        str(keystore), "-storepass", STORE_PASS, "-file", str(self.ca_pem)],
                       check=True, capture_output=True, timeout=60)
        jaas = ("org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{ADMIN_USER}" password="{ADMIN_PASSWORD}";')
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},SASL_SSL://127.0.0.1:{self.sasl_port},"
                         f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
                                    f"SASL_SSL://127.0.0.1:{self.sasl_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map":
                "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": jaas,
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(keystore),
            "ssl.keystore.password": STORE_PASS,
            "ssl.key.password": STORE_PASS,
            "ssl.client.auth": "none",
            "log.dirs": str(self.dir / "data"),
            "num.partitions": "2",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "3",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "2",
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "background.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
            "log.cleaner.enable": "false",
        }
        conf = self.dir / "server.properties"
        conf.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        base = [java_binary(), "-Xms128m", "-Xmx512m", "-XX:+UseSerialGC",
                "-Djava.awt.headless=true", f"-Dlog4j.configuration=file:{LOG4J_PROPERTIES}",
                f"-Dkafka.logs.dir={self.dir}", "-cp", f"{self.lib}/*"]
        fmt = subprocess.run(
            base + ["kafka.tools.StorageTool", "format", "-t", random_cluster_id(),
                    "-c", str(conf),
                    "--add-scram", f"SCRAM-SHA-512=[name={USER},password={PASSWORD}]",
                    "--add-scram", f"SCRAM-SHA-512=[name={ADMIN_USER},password={ADMIN_PASSWORD}]"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=scaled(120))
        if fmt.returncode != 0:
            raise RuntimeError("kafka-storage format --add-scram failed:\n"
                               + fmt.stdout.decode("utf-8", "replace")[-4000:])
        self._stdout = open(self.dir / "stdout.log", "wb")
        self.proc = subprocess.Popen(base + ["kafka.Kafka", str(conf)], stdout=self._stdout,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        self._wait_ready(scaled(90))


@pytest.fixture(scope="module")
def sasl_broker():
    problem = KafkaBroker.prerequisites()
    if problem:
        missing_prerequisite(problem)
    if not shutil.which("keytool"):
        missing_prerequisite("keytool not found (a JDK/JRE provides it)")
    broker = SaslTlsBroker()
    try:
        broker.start()
    except Exception as exc:  # noqa: BLE001 - show why, with the broker's log tail
        log = tail(broker.dir / "server.log", 40) if broker.dir else ""
        broker.stop()
        pytest.fail(f"could not start the SASL_SSL broker: {exc}\n{log}", pytrace=False)
    yield broker
    broker.stop()


def http_get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def write_config(tmp_path: Path, broker, topics: dict, group: str, http_port: int) -> Path:
    cfg = tmp_path / "tidewatch.yaml"
    cfg.write_text(f"""\
brokers: {broker.sasl_bootstrap}
group: {group}
input_topic: {topics['input']}
output_topic: {topics['alerts']}
dlq_topic: {topics['dlq']}
rules: {FIXTURES / 'rules.yaml'}
http: 127.0.0.1:{http_port}
batch_timeout_ms: 50
kafka:
  security.protocol: SASL_SSL
  sasl.mechanisms: SCRAM-SHA-512
  sasl.username: {USER}
  ssl.ca.location: {broker.ca_pem}
  ssl.endpoint.identification.algorithm: https
  statistics.interval.ms: 500
""")
    return cfg


def new_topics(broker, prefix):
    t = {k: unique_name(f"{prefix}-{k}") for k in ("input", "alerts", "dlq")}
    broker.create_topics(t.values(), partitions=2)
    return t


def test_worker_over_sasl_scram_tls(sasl_broker, workers, tmp_path):
    topics = new_topics(sasl_broker, "sasl")
    group = unique_name("sasl-g")
    port = free_port()
    cfg = write_config(tmp_path, sasl_broker, topics, group, port)
    env = {"TIDEWATCH_KAFKA__SASL_PASSWORD": PASSWORD}
    shown = run_tidewatch(["config", "show", "--config", str(cfg)], env=env)
    assert shown.returncode == 0, shown.stderr
    effective = json.loads(shown.stdout)
    assert effective["kafka.sasl.password"] == "***" and PASSWORD not in shown.stdout.decode()

    w = workers.start(["run", "--config", str(cfg)], env=env, name="sasl")
    posts = [("s1", json.dumps({"id": "s1", "text": "free giveaway over TLS"}), 0),
             ("s2", json.dumps({"id": "s2", "text": "click here, authenticated"}), 1),
             ("s3", b"{broken", 0)]
    sasl_broker.produce(topics["input"], posts)
    sasl_broker.wait_for_messages(topics["alerts"], 2, timeout=60, proc=w)
    sasl_broker.wait_for_messages(topics["dlq"], 1, timeout=60, proc=w)
    wait_until(lambda: http_get(port, "/readyz")[0] == 200, scaled(30), "/readyz 200", proc=w)
    alerts = {r.json()["post_id"] for r in sasl_broker.consume_all(topics["alerts"], 2)}
    assert alerts == {"s1", "s2"}
    assert workers.stop(w) == 0, w.describe()
    committed = sasl_broker.committed_offsets(group, topics["input"])
    assert committed == sasl_broker.high_watermarks(topics["input"])


def test_wrong_password_is_not_ready_but_live(sasl_broker, workers, tmp_path):
    topics = new_topics(sasl_broker, "sasl-bad")
    port = free_port()
    cfg = write_config(tmp_path, sasl_broker, topics, unique_name("sasl-bad-g"), port)
    wrong = "not-the-password-7731"
    w = workers.start(["run", "--config", str(cfg)],
                      env={"TIDEWATCH_KAFKA__SASL_PASSWORD": wrong}, name="sasl-bad")
    wait_until(lambda: "authentication" in w.stderr_text().lower(), scaled(30),
               "an authentication error in the worker's log", proc=w)
    deadline = time.monotonic() + 2.0  # four statistics intervals: never ready, always live
    while time.monotonic() < deadline:
        assert http_get(port, "/healthz")[0] == 200
        status, body = http_get(port, "/readyz")
        assert status == 503 and "kafka" in body, body
        time.sleep(0.25)
    assert wrong not in w.stderr_text(), "the password was logged"
    assert workers.stop(w) == 0, w.describe()
