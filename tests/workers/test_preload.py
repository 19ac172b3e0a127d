"""FORGESYTE_PRELOAD_PIPELINES: what an analysis child loads before its first job."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from forgesyte.runtime import build_runtime
from forgesyte.settings import Settings
from forgesyte.workers.executor import AnalysisExecutor
from forgesyte.workers.protocol import ChildReady
from tests.support.server import FORGESYTE, TESTKIT_PIPELINES


def test_the_setting_reaches_every_workers_child(tmp_path: Path) -> None:
    assert Settings().preload_pipelines == "ocr_only"  # the default: OCR is warm
    for text, preload in ((" ocr_only , testkit_grey,", ("ocr_only", "testkit_grey")), ("", ())):
        runtime = build_runtime(
            Settings(data_dir=tmp_path / "data", preload_pipelines=text), workers=1
        )
        try:
            assert runtime.preload == preload
            worker = runtime.make_worker(threading.Event())
            assert worker.runner.executor.preload == preload
        finally:
            runtime.close()


def _libraries(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.parametrize(("preload", "loaded"), [(("ocr_only",), True), ((), False)])
def test_a_child_loads_the_preloaded_pipelines_models_before_its_first_job(
    preload: tuple[str, ...], loaded: bool
) -> None:
    executor = AnalysisExecutor(
        pipelines_dir=str(TESTKIT_PIPELINES), preload=preload, timeout_s=60.0
    )
    try:
        assert isinstance(executor.start(), ChildReady)
        assert executor.child_pid is not None
        assert ("onnxruntime" in _libraries(executor.child_pid)) is loaded
    finally:
        executor.stop()


def test_the_installed_script_run_again_in_a_child_loads_no_command_module() -> None:
    # spawn runs the parent's main script again in every analysis child, as __mp_main__
    # (multiprocessing.spawn._fixup_main_from_path): that must not import the command
    command_modules = (
        "forgesyte.cli",
        "forgesyte.client_commands",
        "forgesyte.client",
        "forgesyte.settings",
    )
    probe = (
        "import runpy, sys\n"
        f"runpy.run_path({FORGESYTE!r}, run_name='__mp_main__')\n"
        f"print(sorted(name for name in {command_modules!r} if name in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
    # and the script still runs the command
    helped = subprocess.run([FORGESYTE, "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "serve" in helped.stdout
