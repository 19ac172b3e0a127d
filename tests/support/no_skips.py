"""A pytest plugin that fails the run when any test was skipped or xfailed."""

from __future__ import annotations

import pytest


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when any test was skipped or xfailed: a skip hides a missing dependency."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    hidden = sum(len(reporter.stats.get(kind, [])) for kind in ("skipped", "xfailed", "xpassed"))
    if hidden and exitstatus == 0:
        reporter.write("\n")  # the progress line (-q) ends without one
        reporter.write_line(
            f"FAILED: {hidden} test(s) skipped or xfailed; every test must run and pass",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
