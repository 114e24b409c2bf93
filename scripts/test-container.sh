#!/usr/bin/env bash
# The image built and run for real (ctest `container`): builds the Dockerfile with a container
# engine, then runs tests/container/ against the image (non-root user, read-only root with the
# tmpfs the Kubernetes manifests declare, --version/demo/config docs, `run` against a real
# Kafka broker and redis-server, SIGTERM drain, image size, shared libraries).
#
# Engine: CONTAINER_ENGINE=podman|docker. Unset: podman when installed, else a reachable Docker
# daemon, else podman installed from Debian's packages (as root). Podman runs rootful with all
# of its state in a private folder (TW_CTR_STATE, default /var/tmp/tidewatch-ctr), so images
# and the build's layer cache survive between runs and nothing of the machine's own podman
# setup is touched. When the Dockerfile's base image is neither present nor pullable (no
# registry reachable), an equivalent is made with debootstrap from the machine's Debian mirror.
#
# Exit: 0 passed, 1 failed, 77 could not run (skipped; with CI=true that is a failure: 1).
# Env: CONTAINER_ENGINE, TW_CTR_STATE, TW_CTR_IMAGE (tag built, default
#      localhost/tidewatch:test), TW_CTR_PULL_TIMEOUT (s, default 60), CI.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${TW_CTR_STATE:-/var/tmp/tidewatch-ctr}"
IMAGE="${TW_CTR_IMAGE:-localhost/tidewatch:test}"
PULL_TIMEOUT="${TW_CTR_PULL_TIMEOUT:-60}"
t_start=$(date +%s)

say() { echo "container: $*"; }
in_ci() { case "${CI:-}" in 1 | [Tt]rue | TRUE | [Yy]es | on) return 0 ;; esac; return 1; }
# A prerequisite that cannot be had: skipped locally, a failure in CI (a skipped container
# test there would hide a broken image).
cannot_run() {
  if in_ci; then
    echo "container: FAILED (CI=true, cannot run): $*" >&2
    exit 1
  fi
  echo "container: SKIPPED: $*" >&2
  exit 77
}
fail() {
  echo "container: FAILED: $*" >&2
  exit 1
}

apt_install() {
  [[ $(id -u) -eq 0 ]] || cannot_run "missing $* and not root to install them"
  command -v apt-get >/dev/null || cannot_run "missing $* and no apt-get to install them"
  say "installing $*"
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
    >"$STATE/apt.log" 2>&1 || {
    tail -n 20 "$STATE/apt.log" >&2
    cannot_run "apt-get install $* failed"
  }
}

mkdir -p "$STATE"

# --- the engine -----------------------------------------------------------------------------
ENGINE="${CONTAINER_ENGINE:-}"
if [[ -z "$ENGINE" ]]; then
  if command -v podman >/dev/null; then
    ENGINE=podman
  elif command -v docker >/dev/null && timeout 20 docker info >/dev/null 2>&1; then
    ENGINE=docker
  else
    ENGINE=podman
  fi
fi
case "$ENGINE" in
docker)
  command -v docker >/dev/null || cannot_run "CONTAINER_ENGINE=docker but no docker command"
  timeout 20 docker info >/dev/null 2>&1 || cannot_run "no Docker daemon answers (docker info)"
  ;;
podman)
  missing=()
  for tool in podman runc conmon; do
    command -v "$tool" >/dev/null || [[ -x /usr/libexec/podman/$tool ]] || missing+=("$tool")
  done
  if ((${#missing[@]})); then
    apt_install podman runc conmon netavark golang-github-containers-common
  fi
  # Rootful podman with a private configuration. Each setting answers a restriction of
  # sandboxed machines (containers in containers) and is harmless elsewhere:
  #  - rlimits pinned to the hard limits we have: podman's defaults (nofile 1048576, nproc
  #    4194304) fail with "setrlimit: Operation not permitted" without CAP_SYS_RESOURCE;
  #  - runc with cgroupfs: crun refuses hybrid cgroup v1/v2 hierarchies, and there may be no
  #    systemd to manage cgroups;
  #  - conmon's environment carries the configuration: conmon runs `podman container
  #    cleanup` itself, and without it every `podman run` waits 20 s for a conmon timeout;
  #  - host networking: no bridge, so no iptables rules or sysctls are needed.
  [[ $(id -u) -eq 0 ]] || cannot_run "podman runs rootful here; run as root (or CONTAINER_ENGINE=docker)"
  mkdir -p "$STATE"/{storage,run,tmp,netcfg}
  nofile=$(ulimit -Hn)
  [[ "$nofile" == unlimited ]] && nofile=1048576
  nproc_max=$(ulimit -Hu)
  pid_max=$(cat /proc/sys/kernel/pid_max)
  if [[ "$nproc_max" == unlimited ]] || ((nproc_max > pid_max)); then nproc_max=$pid_max; fi
  runtime_line=""
  command -v runc >/dev/null && runtime_line='runtime = "runc"'
  cat >"$STATE/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$STATE/storage"
runroot = "$STATE/run"
EOF
  cat >"$STATE/containers.conf" <<EOF
[containers]
netns = "host"
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc_max:$nproc_max"]

[engine]
$runtime_line
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$STATE/tmp"
conmon_env_vars = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "CONTAINERS_CONF=$STATE/containers.conf", "CONTAINERS_STORAGE_CONF=$STATE/storage.conf", "TMPDIR=$STATE/tmp"]

[network]
network_config_dir = "$STATE/netcfg"
EOF
  export CONTAINERS_CONF="$STATE/containers.conf" CONTAINERS_STORAGE_CONF="$STATE/storage.conf"
  export TMPDIR="$STATE/tmp"
  podman info >"$STATE/podman-info.log" 2>&1 || {
    tail -n 20 "$STATE/podman-info.log" >&2
    cannot_run "podman does not work here (podman info)"
  }
  ;;
*) fail "CONTAINER_ENGINE must be docker or podman, not '$ENGINE'" ;;
esac
say "engine $ENGINE ($($ENGINE --version 2>/dev/null | head -n1))"

# --- the base image -------------------------------------------------------------------------
# Image references of the Dockerfile's FROM lines that are not earlier stages.
mapfile -t bases < <(awk 'toupper($1) == "FROM" {
    img = ""; for (i = 2; i <= NF; i++) if ($i !~ /^--/) { img = $i; break }
    if (!(img in stage)) print img
    for (i = 2; i < NF; i++) if (toupper($i) == "AS") stage[$(i + 1)] = 1
  }' "$ROOT/Dockerfile" | sort -u)

# The Debian mirror the machine's apt uses (deb822 or one-line sources).
host_mirror() {
  local m=""
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    m=$(awk '$1 == "URIs:" {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [[ -z "$m" && -f /etc/apt/sources.list ]]; then
    m=$(awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' /etc/apt/sources.list)
  fi
  echo "$m"
}

# debian:12-slim made locally: debootstrap's minbase of bookworm from the host's mirror, with
# what the official slim image configures (apt cache cleaning, no docs/man/locales) and the
# host's apt sources, so the Dockerfile's apt-get steps fetch from where the host does.
make_debian_base() {
  local ref="$1" mirror rootfs="$STATE/rootfs"
  [[ $(id -u) -eq 0 ]] || cannot_run "base image $ref absent, not pullable, and not root to debootstrap it"
  command -v debootstrap >/dev/null || apt_install debootstrap
  mirror=$(host_mirror)
  [[ -n "$mirror" ]] || cannot_run "base image $ref absent, not pullable, and no Debian mirror in the apt sources"
  say "making $ref with debootstrap from $mirror"
  rm -rf "$rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$STATE/debootstrap.log" 2>&1 || {
    tail -n 20 "$STATE/debootstrap.log" >&2
    cannot_run "debootstrap bookworm from $mirror failed"
  }
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    rm -f "$rootfs/etc/apt/sources.list"
    cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/"
  else
    cp /etc/apt/sources.list "$rootfs/etc/apt/sources.list"
  fi
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  # Snapshot mirrors serve Release files past their Valid-Until date; the host tolerates that
  # the same way.
  cat >"$rootfs/etc/apt/apt.conf.d/docker-misc" <<'EOF'
Acquire::GzipIndexes "true";
Acquire::Languages "none";
Apt::AutoRemove::SuggestsImportant "false";
Acquire::Check-Valid-Until "false";
Acquire::Check-Date "false";
EOF
  echo force-unsafe-io >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
  chroot "$rootfs" apt-get clean
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* "$rootfs"/usr/share/man/* \
    "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*
  find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
  rm -f "$rootfs/etc/hostname"
  : >"$rootfs/etc/resolv.conf"
  tar --numeric-owner -C "$rootfs" -c . |
    $ENGINE import --change 'CMD ["bash"]' - "$ref" >"$STATE/import.log" 2>&1 ||
    { tail -n 20 "$STATE/import.log" >&2; fail "$ENGINE import of $ref failed"; }
  rm -rf "$rootfs"
}

for base in "${bases[@]}"; do
  # Docker Hub's short names, spelled out (podman looks both up the same way locally).
  ref="$base"
  [[ "$ref" == */* ]] || ref="docker.io/library/$ref"
  if $ENGINE image inspect "$ref" >/dev/null 2>&1 || $ENGINE image inspect "$base" >/dev/null 2>&1; then
    continue
  fi
  if timeout "$PULL_TIMEOUT" $ENGINE pull -q "$ref" >"$STATE/pull.log" 2>&1; then
    say "pulled $ref"
    continue
  fi
  case "$ref" in
  docker.io/library/debian:12-slim | docker.io/library/debian:bookworm-slim) make_debian_base "$ref" ;;
  *) cannot_run "base image $ref is absent and cannot be pulled ($(tail -n1 "$STATE/pull.log"))" ;;
  esac
done
t_base=$(date +%s)

# --- the build ------------------------------------------------------------------------------
# Layers are cached by the engine: a rerun without source changes takes seconds.
build_args=(build --network host -t "$IMAGE" -f "$ROOT/Dockerfile")
[[ "$ENGINE" == podman ]] && build_args+=(--pull=never --layers)
say "building $IMAGE"
if ! $ENGINE "${build_args[@]}" "$ROOT" >"$STATE/build.log" 2>&1; then
  tail -n 40 "$STATE/build.log" >&2
  fail "$ENGINE build failed (log: $STATE/build.log)"
fi
t_build=$(date +%s)
if [[ "$ENGINE" == podman ]]; then
  # Untagged leftovers of earlier builds (the layer cache of the current sources stays).
  podman image prune -f --filter until=72h >/dev/null 2>&1 || true
fi
say "image $IMAGE: $($ENGINE image inspect -f '{{.Size}}' "$IMAGE") bytes; base $((t_base - t_start)) s, build $((t_build - t_base)) s"

# --- the checks -----------------------------------------------------------------------------
python3 -c 'import pytest' 2>/dev/null || cannot_run "python3 -m pytest is not installed (scripts/install-deps.sh)"
rc=0
TW_CTR_ENGINE="$ENGINE" TW_CTR_IMAGE="$IMAGE" TW_SOURCE_DIR="$ROOT" PYTHONDONTWRITEBYTECODE=1 \
  python3 -m pytest -q -rs -p no:cacheprovider "$ROOT/tests/container" || rc=$?
say "total $(($(date +%s) - t_start)) s"
case $rc in
0) exit 0 ;;
77) cannot_run "tests/container skipped (see above)" ;;
*) exit 1 ;;
esac
