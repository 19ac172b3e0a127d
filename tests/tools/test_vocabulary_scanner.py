"""Tests for tools/vocabulary_scanner.py.

The scanner's `main` runs in this process with its own output streams (a fresh
interpreter per case cost a third of a second each); one test runs the script as a
subprocess, the way pre-commit and people run it. Its pure helpers are imported from the
script's path. Nothing here imports forgesyte.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "tools" / "vocabulary_scanner.py"
REAL_CONFIG = REPO_ROOT / "tools" / "vocabulary.yaml"

CONFIG_TEXT = """\
terms: [gpu_schedule, gpu_worker, distributed, websocket]
paths: [src/]
exclude: ["__pycache__", "src/generated/*"]
"""

PLANTED_MODULE = """\
\"\"\"A module with planted vocabulary.\"\"\"
from somewhere import WebSocket
POOL = "GPU_WORKER"
# Distributed tracing, done the distributed way
gpu_schedule(); Gpu_Schedule()
redistributed = websockets_count + distributed_lock + gpu_worker_pool + my_gpu_worker
# phases of a phase; phase
"""


def _load_scanner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vocabulary_scanner", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before execution so dataclasses can resolve the module.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


scanner = _load_scanner()


@dataclass(frozen=True)
class ScanRun:
    """What one scanner run printed, and its exit status."""

    returncode: int
    stdout: str
    stderr: str


def run_scanner(*args: str | Path, cwd: Path | None = None) -> ScanRun:
    """Run the scanner's `main` here, in `cwd` if given, and capture its output."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with (
        contextlib.chdir(cwd or Path.cwd()),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        try:
            returncode = scanner.main([str(arg) for arg in args])
        except SystemExit as exited:  # argparse refuses its arguments
            returncode = exited.code if isinstance(exited.code, int) else 2
    return ScanRun(returncode, stdout.getvalue(), stderr.getvalue())


def run_scanner_process(*args: str | Path, cwd: Path | None = None) -> ScanRun:
    """Run the scanner script in a fresh interpreter and capture its output."""
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *(str(arg) for arg in args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )
    return ScanRun(done.returncode, done.stdout, done.stderr)


def write(path: Path, content: str | bytes = "") -> Path:
    """Create ``path`` (and its parents) with ``content``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A valid config file outside the scanned tree."""
    return write(tmp_path / "vocabulary.yaml", CONFIG_TEXT)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A root with planted violations in content, file names and folder names."""
    root = tmp_path / "repo"
    src = root / "src"
    write(src / "pkg" / "planted.py", PLANTED_MODULE)
    write(src / "pkg" / "phase2_util.py", "VALUE = 1\n")
    write(src / "Phase_3" / "clean.py", "VALUE = 2\n")
    write(src / "PHASE-4" / "readme.txt", "nothing to see\n")
    write(src / "pkg" / "phase 5.txt", "plain\n")
    # Names that mention phases without a number are fine.
    write(src / "pkg" / "phases.py", "VALUE = 3\n")
    write(src / "pkg" / "phase.py", "VALUE = 4\n")
    write(src / "phase_notes" / "notes.txt", "plain\n")
    return root


EXPECTED_TREE_VIOLATIONS = [
    "src/PHASE-4:0: PHASE-4",
    "src/Phase_3:0: Phase_3",
    "src/pkg/phase 5.txt:0: phase 5",
    "src/pkg/phase2_util.py:0: phase2",
    "src/pkg/planted.py:2: websocket",
    "src/pkg/planted.py:3: gpu_worker",
    "src/pkg/planted.py:4: distributed",
    "src/pkg/planted.py:5: gpu_schedule",
]


def test_reports_every_planted_violation_and_nothing_else(tree: Path, config: Path) -> None:
    result = run_scanner("--config", config, "--root", tree)

    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == [*EXPECTED_TREE_VIOLATIONS, "8 violations in 5 files"]
    assert result.stderr == ""


def test_clean_tree_prints_clean_and_exits_zero(tmp_path: Path, config: Path) -> None:
    write(tmp_path / "src" / "ok.py", "redistributed = 'phases of a phase'\n")

    result = run_scanner("--config", config, "--root", tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "CLEAN\n"


def test_summary_is_singular_for_one_violation(tmp_path: Path, config: Path) -> None:
    write(tmp_path / "src" / "one.py", "x = 1\n\nuse_websocket = websocket\n")

    result = run_scanner("--config", config, "--root", tmp_path)

    assert result.returncode == 1
    assert result.stdout.splitlines() == ["src/one.py:3: websocket", "1 violation in 1 file"]


def test_paths_on_command_line_replace_configured_paths(tree: Path, config: Path) -> None:
    write(tree / "other" / "mod.py", "websocket\n")

    result = run_scanner("--config", config, "--root", tree, "other", "src/Phase_3")

    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "other/mod.py:1: websocket",
        "src/Phase_3:0: Phase_3",
        "2 violations in 2 files",
    ]


def test_exclusions_by_name_and_by_path_are_skipped(tmp_path: Path, config: Path) -> None:
    write(tmp_path / "src" / "__pycache__" / "phase2.py", "websocket\n")
    write(tmp_path / "src" / "generated" / "phase3_client.py", "websocket\n")
    write(tmp_path / "src" / "kept.py", "ok\n")

    result = run_scanner("--config", config, "--root", tmp_path)

    assert result.returncode == 0, result.stdout
    assert result.stdout == "CLEAN\n"


def test_binary_and_non_utf8_files_are_skipped(tmp_path: Path, config: Path) -> None:
    write(tmp_path / "src" / "blob.bin", b"\x00\x01websocket\x00")
    write(tmp_path / "src" / "latin1.txt", "distributed caf\xe9\n".encode("latin-1"))

    result = run_scanner("--config", config, "--root", tmp_path)

    assert result.returncode == 0, result.stdout
    assert result.stdout == "CLEAN\n"


def test_line_numbers_count_newlines_only(tmp_path: Path, config: Path) -> None:
    # A form feed is a line break for str.splitlines but not for editors or grep.
    write(tmp_path / "src" / "ff.py", "a\fb\nc\nwebsocket\n")

    result = run_scanner("--config", config, "--root", tmp_path)

    assert result.stdout.splitlines()[0] == "src/ff.py:3: websocket"


@pytest.mark.parametrize(
    "line",
    [
        "websocket",
        "WebSocket",
        "WEBSOCKET = 1",
        "open(websocket)",
        "ws.websocket()",
        '"websocket"',
        "websocket-client",
        "a gpu_worker b",
        "self.GPU_Worker",
        "(distributed)",
        "distributed.",
        "gpu_schedule-v2",
    ],
)
def test_whole_word_match_flags(line: str) -> None:
    patterns = {term: scanner.compile_term(term) for term in ("websocket", "gpu_worker")}
    patterns["distributed"] = scanner.compile_term("distributed")
    patterns["gpu_schedule"] = scanner.compile_term("gpu_schedule")

    assert list(scanner.scan_text(line, patterns)), line


@pytest.mark.parametrize(
    "line",
    [
        "redistributed",
        "distributed_lock",
        "undistributed2",
        "websockets",
        "websockets_count",
        "WebSocketServer",
        "gpu_worker_pool",
        "my_gpu_worker",
        "gpu_workers",
        "gpu_scheduler",
        "gpuworker",
        "web socket",
    ],
)
def test_whole_word_match_leaves_longer_words_alone(line: str) -> None:
    patterns = {
        term: scanner.compile_term(term)
        for term in ("gpu_schedule", "gpu_worker", "distributed", "websocket")
    }

    assert list(scanner.scan_text(line, patterns)) == []


def test_term_repeated_on_one_line_is_reported_once() -> None:
    patterns = {"websocket": scanner.compile_term("websocket")}

    assert list(scanner.scan_text("websocket websocket\nx\nWebsocket", patterns)) == [
        (1, "websocket"),
        (3, "websocket"),
    ]


@pytest.mark.parametrize(
    ("name", "phase"),
    [
        ("phase2", "phase2"),
        ("phase2_util.py", "phase2"),
        ("Phase_3", "Phase_3"),
        ("PHASE-4", "PHASE-4"),
        ("phase 5.md", "phase 5"),
        ("test_phase12.py", "phase12"),
        ("phase.6", "phase.6"),
        ("phase__7", "phase__7"),
    ],
)
def test_phase_names_are_found(name: str, phase: str) -> None:
    assert scanner.find_phase_name(name) == phase


@pytest.mark.parametrize(
    "name", ["phase", "phases", "phase.py", "phase_notes", "phases_2", "phaseout", "p2", ""]
)
def test_names_without_a_phase_number_are_fine(name: str) -> None:
    assert scanner.find_phase_name(name) is None


def _assert_config_error(result: ScanRun, *needles: str) -> None:
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("vocabulary_scanner: error: ")
    for needle in needles:
        assert needle in result.stderr


def test_missing_config_exits_two(tmp_path: Path) -> None:
    result = run_scanner("--config", tmp_path / "absent.yaml", "--root", tmp_path)

    _assert_config_error(result, "config file not found", "absent.yaml")


def test_malformed_yaml_exits_two(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.yaml", "terms: [websocket\npaths: {\n")

    result = run_scanner("--config", bad, "--root", tmp_path)

    _assert_config_error(result, "malformed YAML", "bad.yaml")


def test_config_without_terms_exits_two(tmp_path: Path) -> None:
    config = write(tmp_path / "noterms.yaml", "paths: [src/]\nexclude: []\n")

    result = run_scanner("--config", config, "--root", tmp_path)

    _assert_config_error(result, "missing required key 'terms'")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "expected a mapping"),
        ("- websocket\n", "expected a mapping"),
        ("terms: websocket\n", "'terms' must be a list of strings"),
        ("terms: []\n", "at least one term"),
        ("terms: [websocket, 3]\n", "'terms' must be a list of strings"),
        ("terms: [websocket, '  ']\n", "empty string"),
        ("terms: [websocket]\npaths: []\n", "'paths' must list at least one path"),
        ("terms: [websocket]\nexclusions: [x]\n", "unknown key(s) exclusions"),
    ],
)
def test_invalid_config_exits_two(tmp_path: Path, text: str, needle: str) -> None:
    config = write(tmp_path / "invalid.yaml", text)

    result = run_scanner("--config", config, "--root", tmp_path)

    _assert_config_error(result, needle)


def test_missing_scan_path_exits_two(tmp_path: Path, config: Path) -> None:
    result = run_scanner("--config", config, "--root", tmp_path, "no_such_dir")

    _assert_config_error(result, "does not exist", "no_such_dir")


def test_shipped_config_is_valid_and_lists_the_required_terms() -> None:
    config = scanner.load_config(REAL_CONFIG)

    assert {"gpu_schedule", "gpu_worker", "distributed", "websocket"} <= set(config.terms)
    assert config.paths == ("src/",)


def test_shipped_config_with_default_paths_finds_planted_violations(tree: Path) -> None:
    result = run_scanner("--root", tree)

    assert result.returncode == 1
    assert result.stdout.splitlines() == [*EXPECTED_TREE_VIOLATIONS, "8 violations in 5 files"]


def test_real_repository_source_tree_is_clean(tmp_path: Path) -> None:
    # Run from elsewhere: the default root is the repository, not the cwd.
    result = run_scanner_process(cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == "CLEAN\n"
