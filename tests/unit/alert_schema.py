#!/usr/bin/env python3
"""Validates the alerts and campaign records that test_alert encodes against the JSON Schemas
shipped for downstream consumers (docs/alert.schema.json, docs/campaign.schema.json).

Usage: alert_schema.py TEST_ALERT_BINARY SOURCE_ROOT
Exits 77 (skipped) without the Python jsonschema package, 1 when a record does not validate
or when test_alert wrote none of a kind (a test that checks nothing must not pass)."""
import json
import os
import subprocess
import sys
import tempfile

SKIP = 77


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    binary, root = argv[1], argv[2]
    try:
        import jsonschema
    except ImportError:
        print("SKIP: the Python package jsonschema is not installed")
        return SKIP
    failures = 0
    with tempfile.TemporaryDirectory(prefix="tw-alert-schema-") as out:
        env = dict(os.environ, TW_ENCODED_DIR=out)
        res = subprocess.run([binary], env=env, capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            print(res.stdout + res.stderr)
            print(f"{binary} failed with exit status {res.returncode}")
            return 1
        for records, schema_name in (("alerts.jsonl", "alert.schema.json"),
                                     ("campaigns.jsonl", "campaign.schema.json")):
            with open(os.path.join(root, "docs", schema_name), encoding="utf-8") as f:
                schema = json.load(f)
            validator = jsonschema.Draft202012Validator(
                schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
            path = os.path.join(out, records)
            # split on "\n" only: str.splitlines() would also split inside a string at the
            # U+2028 that test_alert puts in a post's text (legal raw in JSON)
            with open(path, encoding="utf-8") if os.path.exists(path) else open(os.devnull) as f:
                lines = [line for line in f.read().split("\n") if line]
            if not lines:
                print(f"FAIL {records}: test_alert encoded no record to check")
                failures += 1
                continue
            for n, line in enumerate(lines, 1):
                errors = list(validator.iter_errors(json.loads(line)))
                for e in errors:
                    print(f"FAIL {records}:{n}: {'/'.join(map(str, e.path))}: {e.message}")
                failures += bool(errors)
            print(f"{'ok  ' if not failures else 'FAIL'} {len(lines)} {records} against "
                  f"docs/{schema_name}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
