#!/usr/bin/env python3
"""Report forbidden vocabulary in the source tree.

Two kinds of violation are reported, one per line, as ``path:line: term``:

* a forbidden term (listed in the YAML config) in a file's content, matched
  case-insensitively as a whole word: ``(?<![A-Za-z0-9_])term(?![A-Za-z0-9_])``;
* a file or folder whose *name* contains a phase name ("phase" followed by a
  number, any case, any separator or none: ``phase2``, ``Phase_3``, ``PHASE-4``),
  reported with line 0.

The last line of output is a summary: ``CLEAN`` or ``N violations in M files``.
Exit status: 0 clean, 1 violations found, 2 bad or missing config (or a scan
path that does not exist). Binary files and files that are not valid UTF-8 are
skipped without a report.

Usage: ``python tools/vocabulary_scanner.py [--config PATH] [--root DIR] [paths...]``
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

TOOLS_DIR = Path(__file__).resolve().parent
DEFAULT_ROOT = TOOLS_DIR.parent
DEFAULT_CONFIG = TOOLS_DIR / "vocabulary.yaml"
DEFAULT_SCAN_PATHS: tuple[str, ...] = ("src/",)

EXIT_CLEAN = 0
EXIT_VIOLATIONS = 1
EXIT_USAGE = 2

# "phase" then any run of non-alphanumeric separators (possibly empty) then digits.
PHASE_NAME = re.compile(r"phase[^A-Za-z0-9]*[0-9]+", re.IGNORECASE)

# A term is a whole word when no ASCII letter, digit or underscore touches it.
_WORD_CHAR = "A-Za-z0-9_"
_KNOWN_KEYS = frozenset({"terms", "paths", "exclude"})


class ConfigError(Exception):
    """The configuration file is missing, unreadable or malformed."""


class ScanPathError(Exception):
    """A path to scan does not exist."""


@dataclass(frozen=True)
class Config:
    """What to look for, where, and what to leave out."""

    terms: tuple[str, ...]
    paths: tuple[str, ...] = DEFAULT_SCAN_PATHS
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True, order=True)
class Violation:
    """One forbidden word in a file (``line`` >= 1) or in a name (``line`` == 0)."""

    path: str
    line: int
    term: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.term}"


def _string_list(
    data: dict[str, Any], key: str, source: Path, *, required: bool
) -> tuple[str, ...]:
    """Return ``data[key]`` as a tuple of non-blank strings, or raise ConfigError."""
    if key not in data:
        if required:
            raise ConfigError(f"{source}: missing required key '{key}'")
        return ()
    value = data[key]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{source}: '{key}' must be a list of strings")
    items = tuple(item.strip() for item in value)
    if any(not item for item in items):
        raise ConfigError(f"{source}: '{key}' contains an empty string")
    return items


def load_config(path: Path) -> Config:
    """Read and validate the YAML config at ``path``.

    Raises ConfigError with a message naming the file and the problem.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"malformed YAML in {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'terms' key at the top level")
    unknown = sorted(str(key) for key in data if key not in _KNOWN_KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {', '.join(unknown)}; "
            f"expected {', '.join(sorted(_KNOWN_KEYS))}"
        )
    terms = _string_list(data, "terms", path, required=True)
    if not terms:
        raise ConfigError(f"{path}: 'terms' must list at least one term")
    paths = DEFAULT_SCAN_PATHS
    if "paths" in data:
        paths = _string_list(data, "paths", path, required=True)
        if not paths:
            raise ConfigError(f"{path}: 'paths' must list at least one path (or be omitted)")
    exclude = _string_list(data, "exclude", path, required=False)
    return Config(terms=terms, paths=paths, exclude=exclude)


def compile_term(term: str) -> re.Pattern[str]:
    """Return the case-insensitive whole-word pattern for a literal ``term``."""
    return re.compile(rf"(?<![{_WORD_CHAR}]){re.escape(term)}(?![{_WORD_CHAR}])", re.IGNORECASE)


def find_phase_name(name: str) -> str | None:
    """Return the phase name contained in a file or folder ``name``, if any."""
    match = PHASE_NAME.search(name)
    return match.group(0) if match else None


def scan_text(text: str, patterns: dict[str, re.Pattern[str]]) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, term)`` for each line of ``text`` containing a term.

    Lines are split on "\\n" only, so numbers agree with editors and grep.
    A term found several times on one line is yielded once for that line.
    """
    for number, line in enumerate(text.split("\n"), start=1):
        for term, pattern in patterns.items():
            if pattern.search(line):
                yield number, term


def read_text_file(path: Path) -> str | None:
    """Return a file's content, or None if it is binary or not valid UTF-8."""
    data = path.read_bytes()
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _display(path: Path, root: Path) -> str:
    """Return ``path`` relative to ``root`` in POSIX form, or absolute if outside it."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _is_excluded(display: str, name: str, exclude: Sequence[str]) -> bool:
    return any(
        fnmatch.fnmatchcase(display, pat) or fnmatch.fnmatchcase(name, pat) for pat in exclude
    )


def iter_entries(
    root: Path, scan_path: Path, exclude: Sequence[str]
) -> Iterator[tuple[Path, bool]]:
    """Yield ``(path, is_file)`` for ``scan_path`` and everything below it that is not excluded.

    Folders are yielded before their content; symbolic links to folders are not
    followed. The root itself is never yielded (its name is not the project's).
    """
    if _is_excluded(_display(scan_path, root), scan_path.name, exclude):
        return
    if not scan_path.is_dir():
        yield scan_path, True
        return
    if scan_path != root:
        yield scan_path, False
    for dirpath, dirnames, filenames in os.walk(scan_path):
        current = Path(dirpath)
        kept = []
        for dirname in sorted(dirnames):
            child = current / dirname
            if not _is_excluded(_display(child, root), dirname, exclude):
                kept.append(dirname)
                yield child, False
        dirnames[:] = kept
        for filename in sorted(filenames):
            child = current / filename
            if not _is_excluded(_display(child, root), filename, exclude):
                yield child, True


def scan(root: Path, config: Config, paths: Sequence[str] | None = None) -> list[Violation]:
    """Scan ``paths`` (default: the config's) under ``root`` and return sorted violations.

    Relative paths are taken relative to ``root``. Raises ScanPathError when a
    path does not exist.
    """
    root = root.resolve()
    patterns = {term: compile_term(term) for term in config.terms}
    found: set[Violation] = set()
    for raw in paths if paths else config.paths:
        scan_path = (root / raw).resolve()
        if not scan_path.exists():
            raise ScanPathError(f"path to scan does not exist: {raw} (root {root})")
        for entry, is_file in iter_entries(root, scan_path, config.exclude):
            display = _display(entry, root)
            phase = find_phase_name(entry.name)
            if phase is not None:
                found.add(Violation(display, 0, phase))
            if not is_file or not entry.is_file():
                continue
            try:
                text = read_text_file(entry)
            except OSError as exc:
                print(f"vocabulary_scanner: warning: cannot read {display}: {exc}", file=sys.stderr)
                continue
            if text is None:
                continue
            for number, term in scan_text(text, patterns):
                found.add(Violation(display, number, term))
    return sorted(found)


def summarize(violations: Sequence[Violation]) -> str:
    """Return the summary line: ``CLEAN`` or ``N violations in M files``."""
    if not violations:
        return "CLEAN"
    count = len(violations)
    files = len({violation.path for violation in violations})
    return (
        f"{count} violation{'s' if count != 1 else ''} "
        f"in {files} file{'s' if files != 1 else ''}"
    )


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="vocabulary_scanner",
        description="Report forbidden terms in file content and phase names in file names.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help=f"YAML config (default: {DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=DEFAULT_ROOT,
        help="directory that paths are relative to and reported from (default: repository root)",
    )
    parser.add_argument(
        "paths",
        nargs="*",
        help="files or folders to scan, relative to the root (default: the config's paths)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scanner; print violations and a summary; return the exit status."""
    args = _parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"vocabulary_scanner: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    root: Path = args.root
    if not root.is_dir():
        print(f"vocabulary_scanner: error: root is not a directory: {root}", file=sys.stderr)
        return EXIT_USAGE
    try:
        violations = scan(root, config, args.paths)
    except ScanPathError as exc:
        print(f"vocabulary_scanner: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for violation in violations:
        print(violation)
    print(summarize(violations))
    return EXIT_VIOLATIONS if violations else EXIT_CLEAN


if __name__ == "__main__":
    sys.exit(main())
