#!/usr/bin/env bash
# Checks the Dockerfile without a Docker engine (none runs on the development machines):
# copies exactly what its build stage COPYs into an empty folder, runs the same build
# commands there, and verifies that every shared library the binary loads comes from a
# package the final stage installs (or one of their dependencies), then runs the binary.
# This catches a COPY that misses a file the build needs and a runtime library the final
# image lacks. Debian 12 on the host stands in for debian:12-slim.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DOCKERFILE="$ROOT/Dockerfile"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Build stage: the COPY lines before the second FROM.
build_stage="$(awk '/^FROM /{n++} n==1' "$DOCKERFILE")"
while read -r _ src dst; do
  [[ "$src" == --* ]] && continue
  mkdir -p "$work/src/$(dirname "$dst")"
  cp -a "$ROOT/$src" "$work/src/${dst%/}" 2>/dev/null || cp -a "$ROOT/$src" "$work/src/"
done < <(grep -E '^COPY ' <<<"$build_stage")

# The build RUN step (the one that calls cmake), joined across continuation lines.
build_cmd="$(sed -n '/^RUN .*cmake -S/,/[^\\]$/p' <<<"$build_stage" | sed 's/^RUN //; s/\\$//' | tr '\n' ' ')"
echo "dockerfile: build stage: $build_cmd"
(cd "$work/src" && bash -c "$build_cmd" >"$work/build.log" 2>&1) || {
  tail -n 30 "$work/build.log" >&2
  echo "dockerfile: the build stage fails with only the COPYed files" >&2
  exit 1
}
binary="$work/src/build/tidewatch"

# Final stage: the packages it installs, and everything they depend on.
final_pkgs="$(awk '/^FROM /{n++} n==2' "$DOCKERFILE" | sed -n '/apt-get install/,/&&/p' |
  tr ' \\' '\n\n' | grep -E '^[a-z0-9][a-z0-9.+-]+$' | grep -vE '^(apt-get|install|rm|useradd)$' || true)"
allowed="$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
  --no-breaks --no-replaces --no-enhances $final_pkgs 2>/dev/null |
  grep -E '^[a-z0-9]' | sed 's/:amd64$//' | sort -u)"
allowed+=$'\n'"libc6"$'\n'"libgcc-s1"
missing=0
while read -r lib path; do
  # usrmerge: dpkg may know the file under /lib or under /usr/lib
  pkg="$(dpkg -S "$path" 2>/dev/null | head -n1 | cut -d: -f1 || true)"
  [[ -n "$pkg" ]] || pkg="$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -n1 | cut -d: -f1 || true)"
  if ! grep -qx "$pkg" <<<"$allowed"; then
    echo "dockerfile: $lib ($path, package '${pkg:-unknown}') is not installed by the final stage" >&2
    missing=1
  fi
done < <(ldd "$binary" | awk '/=> \//{print $1, $3}')
[[ $missing -eq 0 ]] || exit 1

"$binary" --version
"$binary" rules check "$ROOT/examples/rules.yaml" >/dev/null
echo "dockerfile: build stage builds from its COPYs; final stage provides every library ($(ldd "$binary" | grep -c '=> /') checked)"
