"""Proves the harness itself: the KRaft broker takes topics and messages that confluent-kafka
and kcat agree on, and redis-server answers."""

import shutil
import subprocess

import pytest

from harness import missing_prerequisite, scaled, unique_name


def test_broker_roundtrip_with_kcat(kafka):
    if not shutil.which("kcat"):
        missing_prerequisite("kcat not found (scripts/install-deps.sh installs it)")
    topic = kafka.create_topic(unique_name("smoke"), partitions=3)
    sent = [(f"k{i}", f"value {i}") for i in range(10)]
    locations = kafka.produce(topic, sent)
    assert len(locations) == 10
    assert sum(kafka.high_watermarks(topic).values()) == 10

    out = subprocess.run(
        ["kcat", "-C", "-b", kafka.bootstrap, "-t", topic, "-e", "-o", "beginning", "-q",
         "-f", "%k\t%s\n"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=scaled(60), check=False)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    got = sorted(tuple(line.split("\t", 1)) for line in out.stdout.decode().splitlines() if line)
    assert got == sorted(sent)

    # and confluent-kafka reads the same back, with partitions and offsets
    records = kafka.consume_all(topic, expected_count=10, timeout=30)
    assert sorted((r.key.decode(), r.value.decode()) for r in records) == sorted(sent)
    assert sorted((r.partition, r.offset) for r in records) == sorted(locations)


def test_committed_offsets_of_unknown_group_are_unset(kafka):
    topic = kafka.create_topic(unique_name("smoke-commit"), partitions=3)
    offsets = kafka.committed_offsets(unique_name("nobody"), topic)
    assert set(offsets) == {0, 1, 2}
    assert all(o < 0 for o in offsets.values()), offsets


def test_redis_answers(redis_clean):
    assert redis_clean.command("PING") == "PONG"
    redis_clean.command("SET", "tw:smoke", "1", db=2)
    assert redis_clean.dbsize(2) == 1
    assert redis_clean.dbsize(0) == 0
    assert redis_clean.url.startswith("redis://127.0.0.1:")


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(pytest.main([__file__, "-q"]))
