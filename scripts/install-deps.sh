#!/usr/bin/env bash
# Installs everything tidewatch needs to build and to run its tests on Debian 12:
# build tools and libraries (apt), the servers of the integration tests (redis-server,
# a Kafka broker from Maven Central jars, kcat), and the Python test dependencies.
#
# Idempotent and fast when everything is present: apt-get runs only when a package is
# missing, pip only when a requirement is not satisfied, Maven only when the jars are absent.
# Runs as root (uses sudo when not root).
#
# usage: scripts/install-deps.sh [--no-kafka] [--no-python]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQS="$ROOT/tests/integration/requirements.txt"

with_kafka=1
with_python=1
for arg in "$@"; do
  case "$arg" in
    --no-kafka) with_kafka=0 ;;
    --no-python) with_python=0 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "install-deps: unknown option: $arg" >&2; exit 2 ;;
  esac
done

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: not root and no sudo" >&2; exit 1; }
  SUDO="sudo"
fi

PACKAGES=(
  build-essential cmake pkg-config
  librdkafka-dev libjansson-dev libhiredis-dev libhyperscan-dev libutf8proc-dev
  libyaml-dev libmicrohttpd-dev libssl-dev libpcre2-dev libidn2-dev
  redis-server kcat clang-format
  maven
  prometheus
)

# A Java 17+ runtime for the Kafka broker and Maven: keep whatever provides it already.
java_ok() {
  command -v java >/dev/null || return 1
  local v
  v="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
  [[ -n "$v" && "${v%%.*}" -ge 17 ]]
}
if ! java_ok; then
  PACKAGES+=(openjdk-17-jre-headless)
fi

# pip for the Python used by the tests (python3 on PATH, like ctest's find_package(Python3)).
if [[ $with_python -eq 1 ]] && ! python3 -m pip --version >/dev/null 2>&1; then
  PACKAGES+=(python3-pip)
fi

is_installed() {
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == "installed" ]]
}

# ---- step 1: Debian packages ----------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
  is_installed "$p" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "apt: all ${#PACKAGES[@]} packages present"
else
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >/dev/null
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "apt: installed ${missing[*]}"
fi

# ---- step 2: Python test dependencies ---------------------------------------------------
if [[ $with_python -eq 1 ]]; then
  # Satisfied already? (pinned names and versions read from requirements.txt, no network)
  if python3 - "$REQS" <<'PY' 2>/dev/null
import re, sys
from importlib import metadata
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(==|>=)?\s*([^\s;]*)", line)
    name, op, want = m.group(1), m.group(2), m.group(3)
    have = metadata.version(name)  # raises when missing
    if op == "==" and have != want:
        sys.exit(1)
    if op == ">=":
        key = lambda v: [int(x) for x in re.findall(r"\d+", v)[:3]]
        if key(have) < key(want):
            sys.exit(1)
PY
  then
    echo "python: test requirements present ($(python3 --version 2>&1))"
  else
    pip_log="$(mktemp)"
    if ! python3 -m pip install -q --disable-pip-version-check -r "$REQS" >"$pip_log" 2>&1; then
      if grep -q externally-managed "$pip_log"; then
        # PEP 668 (Debian's own python3): this machine's test Python is the system one.
        python3 -m pip install -q --disable-pip-version-check --break-system-packages \
          -r "$REQS" >"$pip_log" 2>&1 || { cat "$pip_log" >&2; rm -f "$pip_log"; exit 1; }
      else
        cat "$pip_log" >&2; rm -f "$pip_log"; exit 1
      fi
    fi
    rm -f "$pip_log"
    echo "python: installed $(grep -v '^#' "$REQS" | grep -v '^$' | tr '\n' ' ')"
  fi
else
  echo "python: skipped (--no-python)"
fi

# ---- step 2b: kustomize for tests/deploy -------------------------------------------------
# `kubectl kustomize` when kubectl is there; else the kustomize module through the Go proxy.
if kubectl kustomize --help >/dev/null 2>&1 || command -v kustomize >/dev/null; then
  echo "kustomize: present"
elif command -v go >/dev/null; then
  if $SUDO env "PATH=$PATH" GOBIN=/usr/local/bin \
      go install sigs.k8s.io/kustomize/kustomize/v5@v5.5.0; then
    echo "kustomize: installed $(kustomize version 2>/dev/null)"
  else
    echo "kustomize: go install failed; tests/deploy fails in CI without it" >&2
  fi
else
  echo "kustomize: neither kubectl nor go found; tests/deploy will skip the kustomize builds" >&2
fi

# ---- step 3: Kafka broker jars ----------------------------------------------------------
if [[ $with_kafka -eq 1 ]]; then
  "$ROOT/scripts/fetch-kafka.sh"
else
  echo "kafka jars: skipped (--no-kafka)"
fi
