"""tests/pytest_ci.py: a skip is a skip locally and a failure with CI=true, for skips at run
time and at import time alike. Runs pytest on a throwaway suite that loads the plugin the
way tests/integration and tests/deploy do."""

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent


RUNTIME_SKIP = ("import pytest\n"
                "def test_passes():\n    pass\n"
                "def test_skips():\n    pytest.skip('no server here')\n"
                "@pytest.mark.xfail(reason='known')\ndef test_xfail():\n    assert False\n")
IMPORT_SKIP = ("import pytest\n"
               "pytest.importorskip('no_such_module_for_tidewatch')\n"
               "def test_never_runs():\n    pass\n")


def run_suite(tmp_path: Path, files: dict, ci: bool) -> subprocess.CompletedProcess:
    (tmp_path / "conftest.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(TESTS)!r})\n"
        "from pytest_ci import pytest_make_collect_report, pytest_runtest_makereport\n")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           str(tmp_path)], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)


def test_skips_are_skips_locally(tmp_path):
    result = run_suite(tmp_path, {"test_runtime_skip.py": RUNTIME_SKIP,
                                  "test_import_skip.py": IMPORT_SKIP}, ci=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 2 skipped, 1 xfailed" in result.stdout, result.stdout


def test_runtime_skip_fails_with_ci_true(tmp_path):
    result = run_suite(tmp_path, {"test_runtime_skip.py": RUNTIME_SKIP}, ci=True)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "skipped with CI=true" in result.stdout, result.stdout
    assert "no server here" in result.stdout, result.stdout
    # the passing test and the expected failure are left alone
    assert "1 failed, 1 passed, 1 xfailed" in result.stdout, result.stdout


def test_import_time_skip_fails_with_ci_true(tmp_path):
    result = run_suite(tmp_path, {"test_import_skip.py": IMPORT_SKIP}, ci=True)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "skipped with CI=true" in result.stdout, result.stdout
    assert "no_such_module_for_tidewatch" in result.stdout, result.stdout
