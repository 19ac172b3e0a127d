"""The suite's rule that a skipped or xfailed test fails the run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_pytest(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    test_file = tmp_path / "test_sample.py"
    test_file.write_text(body)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.support.no_skips", "-q", str(test_file)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "body",
    [
        "import pytest\n\n@pytest.mark.skip(reason='x')\ndef test_a():\n    pass\n",
        "import pytest\n\ndef test_a():\n    pytest.skip('missing server')\n",
        "import pytest\n\n@pytest.mark.xfail\ndef test_a():\n    assert False\n",
    ],
    ids=["skip-mark", "skip-call", "xfail"],
)
def test_a_skip_or_xfail_fails_the_run(tmp_path: Path, body: str) -> None:
    done = run_pytest(tmp_path, "def test_ok():\n    pass\n\n" + body)
    assert done.returncode == 1, done.stdout
    assert "skipped or xfailed" in done.stdout


def test_a_clean_run_passes(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, "def test_ok():\n    assert 1 + 1 == 2\n")
    assert done.returncode == 0, done.stdout
