"""The suite's rule that a skipped or xfailed test fails the run.

Each case runs pytest in this process (pytester), with the rule's plugin as the suite
loads it: a new interpreter per case cost about 10 s of CPU under the suite's load.
"""

from __future__ import annotations

import pytest

RULE = ("-p", "tests.support.no_skips", "-p", "no:cacheprovider", "-q")


@pytest.mark.parametrize(
    "body",
    [
        "import pytest\n\n@pytest.mark.skip(reason='x')\ndef test_a():\n    pass\n",
        "import pytest\n\ndef test_a():\n    pytest.skip('missing server')\n",
        "import pytest\n\n@pytest.mark.xfail\ndef test_a():\n    assert False\n",
    ],
    ids=["skip-mark", "skip-call", "xfail"],
)
def test_a_skip_or_xfail_fails_the_run(pytester: pytest.Pytester, body: str) -> None:
    pytester.makepyfile(test_sample="def test_ok():\n    pass\n\n" + body)
    done = pytester.runpytest_inprocess(*RULE)
    assert done.ret == pytest.ExitCode.TESTS_FAILED, done.stdout.str()
    done.stdout.fnmatch_lines(["FAILED: 1 test(s) skipped or xfailed; every test must run*"])


def test_a_clean_run_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_sample="def test_ok():\n    assert 1 + 1 == 2\n")
    done = pytester.runpytest_inprocess(*RULE)
    assert done.ret == pytest.ExitCode.OK, done.stdout.str()
    done.assert_outcomes(passed=1)
