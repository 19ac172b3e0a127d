"""A pytest plugin: figures a test measured, printed in the run's summary.

A test asks for ``report_figures`` and appends lines to it. The lines travel in the
test's report (its user properties), so the summary shows them also when the test ran
in a pytest-xdist worker process.
"""

from __future__ import annotations

import pytest

FIGURES = "scale-out figures"


@pytest.fixture
def report_figures(request: pytest.FixtureRequest) -> list[str]:
    """Lines a test wants in the run's summary (figures of a scale-out run)."""
    figures: list[str] = []
    request.node.user_properties.append((FIGURES, figures))
    return figures


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the figures the tests reported, under one heading."""
    figures = [
        str(line)
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "call"
        for name, lines in getattr(report, "user_properties", [])
        if name == FIGURES
        for line in lines
    ]
    if figures:
        terminalreporter.section(FIGURES)
        for line in figures:
            terminalreporter.write_line(line)
