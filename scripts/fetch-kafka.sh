#!/usr/bin/env bash
# Fetches the jars of the Kafka broker that the integration tests start (KRaft, single node)
# from Maven Central into tests/integration/.kafka/lib (git-ignored).
# Idempotent: does nothing when kafka_2.13-<version>.jar is already there.
#
# usage: scripts/fetch-kafka.sh [--force]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
POM="$ROOT/tests/integration/kafka/pom.xml"
DEST="$ROOT/tests/integration/.kafka/lib"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")"
MARKER="$DEST/kafka_2.13-$KAFKA_VERSION.jar"

force=0
[[ "${1:-}" == "--force" ]] && force=1

if [[ $force -eq 0 && -s "$MARKER" ]]; then
  echo "kafka jars: present ($(ls "$DEST"/*.jar | wc -l) jars in ${DEST#"$ROOT"/})"
  exit 0
fi

command -v mvn >/dev/null || { echo "kafka jars: mvn not found (install maven)" >&2; exit 1; }
command -v java >/dev/null || { echo "kafka jars: java not found (install a JRE 17)" >&2; exit 1; }

# Resolve into a fresh folder, then swap it in, so an interrupted run never leaves a
# half-populated lib/ that looks complete.
mkdir -p "$(dirname "$DEST")"
tmp="$(mktemp -d "$(dirname "$DEST")/fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
    -DoutputDirectory="$tmp/lib" >"$tmp/mvn.log" 2>&1 || {
  echo "kafka jars: mvn failed:" >&2
  tail -n 40 "$tmp/mvn.log" >&2
  exit 1
}
[[ -s "$tmp/lib/kafka_2.13-$KAFKA_VERSION.jar" ]] || {
  echo "kafka jars: kafka_2.13-$KAFKA_VERSION.jar missing after mvn" >&2
  exit 1
}
rm -rf "$DEST"
mv "$tmp/lib" "$DEST"
echo "kafka jars: fetched Kafka $KAFKA_VERSION ($(ls "$DEST"/*.jar | wc -l) jars in ${DEST#"$ROOT"/})"
