"""Fixtures of the container tests: the image scripts/test-container.sh built, the engine that
runs it, the pod spec of deploy/kubernetes/base/deployment.yaml turned into engine options,
and (from tests/integration) a real Kafka broker and a real redis-server.

Run through scripts/test-container.sh (ctest `container`), which builds the image and sets
TW_CTR_ENGINE (docker|podman, with its configuration in the environment) and TW_CTR_IMAGE.
A missing prerequisite skips (exit 77 from the script); with CI=true it fails.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SOURCE_DIR = Path(os.environ.get("TW_SOURCE_DIR") or HERE.parent.parent).resolve()
INTEGRATION = HERE.parent / "integration"
sys.path.insert(0, str(INTEGRATION))
sys.path.insert(0, str(HERE.parent))

# With CI=true any skip fails (the suites' shared rule), not only missing prerequisites.
from pytest_ci import pytest_make_collect_report, pytest_runtest_makereport  # noqa: E402,F401
from harness import missing_prerequisite, scaled  # noqa: E402

# The integration suite's session fixtures (broker and redis-server), under their own names.
_spec = importlib.util.spec_from_file_location("tw_integration_conftest", INTEGRATION / "conftest.py")
_integration = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_integration)
kafka = _integration.kafka
redis = _integration.redis

DEPLOYMENT = SOURCE_DIR / "deploy" / "kubernetes" / "base" / "deployment.yaml"


class Engine:
    """`docker` or `podman` on the image under test."""

    def __init__(self, command: str, image: str):
        self.command = command
        self.image = image

    def __call__(self, *args, timeout: float = 120.0, input: bytes | None = None):
        cmd = [self.command] + [str(a) for a in args]
        try:
            return subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  timeout=scaled(timeout),
                                  stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"`{' '.join(cmd)}` did not finish within {scaled(timeout):.0f}s\n"
                        f"stderr tail: {(exc.stderr or b'')[-2000:]!r}", pytrace=False)

    def inspect(self, template: str) -> str:
        res = self("image", "inspect", "-f", template, self.image)
        assert res.returncode == 0, res.stderr.decode(errors="replace")
        return res.stdout.decode().strip()

    def read_only_options(self) -> list:
        """--read-only alone: podman adds tmpfs on /tmp, /run and /var/tmp to it by default,
        which would hide a write the manifests do not allow."""
        opts = ["--read-only"]
        if self.command == "podman":
            opts.append("--read-only-tmpfs=false")
        return opts


@pytest.fixture(scope="session")
def engine() -> Engine:
    command, image = os.environ.get("TW_CTR_ENGINE"), os.environ.get("TW_CTR_IMAGE")
    if not command or not image:
        missing_prerequisite("TW_CTR_ENGINE / TW_CTR_IMAGE not set: run scripts/test-container.sh")
    eng = Engine(command, image)
    if eng("image", "inspect", image).returncode != 0:
        missing_prerequisite(f"image {image} not found by {command}")
    return eng


def _k8s_size_to_tmpfs(quantity: str) -> str:
    """A Kubernetes quantity (64Mi, 1Gi, 500M, 1000) as a tmpfs size= value."""
    units = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "K": 1000, "k": 1000, "M": 1000**2,
             "G": 1000**3}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return str(int(float(quantity[:-len(suffix)]) * factor))
    return str(int(quantity))


class PodSpec:
    """The worker container of deploy/kubernetes/base/deployment.yaml as engine options."""

    def __init__(self, path: Path):
        import yaml  # PyYAML: scripts/install-deps.sh

        doc = yaml.safe_load(path.read_text())
        pod = doc["spec"]["template"]["spec"]
        (self.container,) = [c for c in pod["containers"] if c["name"] == "tidewatch"]
        self.pod_security = pod.get("securityContext") or {}
        self.security = self.container.get("securityContext") or {}
        self.volumes = {v["name"]: v for v in pod.get("volumes") or []}
        self.grace_s = int(pod.get("terminationGracePeriodSeconds", 30))
        self.args = list(self.container.get("args") or [])
        self.env = {e["name"]: e["value"] for e in self.container.get("env") or [] if "value" in e}
        self.http_port = next(p["containerPort"] for p in self.container.get("ports") or []
                              if p["name"] == self.container["readinessProbe"]["httpGet"]["port"])
        self.readiness_path = self.container["readinessProbe"]["httpGet"]["path"]

    def _setting(self, key):
        """A securityContext key, the container's overriding the pod's."""
        return self.security.get(key, self.pod_security.get(key))

    @property
    def run_as(self) -> str:
        user, group = self._setting("runAsUser"), self._setting("runAsGroup")
        return f"{user}:{group}" if group is not None else str(user)

    def tmpfs_mounts(self) -> list:
        """(mountPath, options) of every emptyDir volume mount."""
        out = []
        for m in self.container.get("volumeMounts") or []:
            vol = self.volumes[m["name"]]
            if "emptyDir" in vol:
                opts = "rw,mode=1777"
                limit = (vol["emptyDir"] or {}).get("sizeLimit")
                if limit:
                    opts += f",size={_k8s_size_to_tmpfs(str(limit))}"
                out.append((m["mountPath"], opts))
        return out

    def config_map_mounts(self) -> dict:
        """ConfigMap name -> mountPath."""
        out = {}
        for m in self.container.get("volumeMounts") or []:
            vol = self.volumes[m["name"]]
            if "configMap" in vol:
                out[vol["configMap"]["name"]] = m["mountPath"]
        return out

    def options(self, engine: Engine, config_maps: dict | None = None) -> list:
        """Engine options for the pod's security context and volumes; config_maps maps a
        ConfigMap name to the host folder standing in for it (mounted read-only)."""
        opts = []
        if self.security.get("readOnlyRootFilesystem"):
            opts += engine.read_only_options()
        for path, tmpfs_opts in self.tmpfs_mounts():
            opts += ["--tmpfs", f"{path}:{tmpfs_opts}"]
        for name, path in self.config_map_mounts().items():
            if config_maps and name in config_maps:
                opts += ["-v", f"{config_maps[name]}:{path}:ro,z"]
        if self._setting("runAsUser") is not None:
            opts += ["--user", self.run_as]
        for cap in (self.security.get("capabilities") or {}).get("drop") or []:
            opts += ["--cap-drop", cap]
        if self.security.get("allowPrivilegeEscalation") is False:
            opts += ["--security-opt", "no-new-privileges"]
        return opts


@pytest.fixture(scope="session")
def pod() -> PodSpec:
    return PodSpec(DEPLOYMENT)


def pytest_sessionfinish(session, exitstatus):
    """A run where something was skipped did not check everything: exit 77 (ctest SKIP),
    never a silent pass. (With CI=true prerequisites fail instead of skipping.)"""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped") if reporter else None
    if exitstatus == 0 and skipped:
        session.exitstatus = 77
