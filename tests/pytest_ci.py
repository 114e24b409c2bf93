"""A pytest plugin shared by the Python suites (tests/integration, tests/deploy): with CI=true
every skip is a failure, wherever it comes from (pytest.skip, importorskip at import time,
a skip marker), so CI cannot go green on tests that did not run. Locally a skip stays a skip,
with its reason in the summary (-rs)."""

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on")


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _fail_skip(report, where: str):
    report.outcome = "failed"
    report.longrepr = f"{where} skipped with CI=true (CI must run every test): " \
                      f"{_skip_reason(report)}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        _fail_skip(report, item.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped:
        _fail_skip(report, collector.nodeid)
