"""One line of the bench's table, shared by run_bench and the modules that build rows."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Row:
    """One line of the table."""

    key: str
    measure: str
    figure: str
    ratio: str = ""
    target: str = ""
    passed: bool | None = None

    @property
    def verdict(self) -> str:
        """PASS, FAIL or blank (no target)."""
        if self.passed is None:
            return ""
        return "PASS" if self.passed else "FAIL"
