"""The pipeline catalog: built-in definitions plus a user folder, each validated at load."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from forgesyte.pipelines.model import PipelineDefinition, PipelineError
from forgesyte.plugins.registry import PluginRegistry

DEFAULT_PIPELINE_ID = "ocr_only"


@dataclass(frozen=True)
class PipelineEntry:
    """A loaded pipeline and whether it can run here (and if not, why)."""

    definition: PipelineDefinition
    source: str
    unavailable_reason: str | None = None

    @property
    def available(self) -> bool:
        """Whether every tool of the pipeline can run here."""
        return self.unavailable_reason is None


class PipelineNotRunnable(Exception):
    """A job names a pipeline this process cannot run."""

    def __init__(self, pipeline_id: str, message: str) -> None:
        super().__init__(message)
        self.pipeline_id = pipeline_id


class UnknownPipeline(PipelineNotRunnable):
    """No pipeline has this id."""

    def __init__(self, pipeline_id: str) -> None:
        super().__init__(pipeline_id, f"unknown pipeline {pipeline_id!r}")


class PipelineUnavailable(PipelineNotRunnable):
    """The pipeline exists, but one of its tools cannot run here (a missing model)."""

    def __init__(self, pipeline_id: str, reason: str) -> None:
        super().__init__(pipeline_id, f"pipeline {pipeline_id!r} is unavailable: {reason}")
        self.reason = reason


@dataclass
class PipelineCatalog:
    """All pipelines by id, with the files that were refused and why."""

    pipelines: dict[str, PipelineEntry] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)

    def get(self, pipeline_id: str) -> PipelineEntry | None:
        """The pipeline with this id, or None."""
        return self.pipelines.get(pipeline_id)

    def runnable(self, pipeline_id: str) -> PipelineEntry:
        """The pipeline with this id, if it can run here.

        Raises UnknownPipeline or PipelineUnavailable (both PipelineNotRunnable) otherwise.
        """
        entry = self.pipelines.get(pipeline_id)
        if entry is None:
            raise UnknownPipeline(pipeline_id)
        if entry.unavailable_reason:
            raise PipelineUnavailable(pipeline_id, entry.unavailable_reason)
        return entry

    def ids(self) -> list[str]:
        """Every pipeline id, sorted."""
        return sorted(self.pipelines)


def parse_definition(text: str, source: str) -> PipelineDefinition:
    """Parse and structurally validate one pipeline file; errors name the source."""
    try:
        definition = PipelineDefinition.model_validate(json.loads(text))
    except json.JSONDecodeError as exc:
        raise PipelineError(f"{source}: not valid JSON: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'document'}: {err['msg']}"
            for err in exc.errors()
        )
        raise PipelineError(f"{source}: {problems}") from exc
    try:
        definition.validate_graph()
    except PipelineError as exc:
        raise PipelineError(f"{source}: {exc}") from exc
    return definition


def _builtin_sources() -> list[tuple[str, str]]:
    folder = resources.files("forgesyte.pipelines") / "definitions"
    return sorted(
        (f"forgesyte/pipelines/definitions/{item.name}", item.read_text(encoding="utf-8"))
        for item in folder.iterdir()
        if item.name.endswith(".json")
    )


MAX_PIPELINE_FILE_BYTES = 1 << 20  # a pipeline file larger than this is refused unread
USER_DIR_LABEL = "pipelines_dir"  # how FORGESYTE_PIPELINES_DIR's files are named outside logs


def _read_pipeline_file(path: Path, label: str) -> str:
    """The text of one pipeline file; PipelineError naming it by label when it cannot be read."""
    try:
        if not path.is_file():
            what = "a broken symlink" if path.is_symlink() and not path.exists() else None
            raise PipelineError(f"{label}: {what or 'not a regular file'}")
        if path.stat().st_size > MAX_PIPELINE_FILE_BYTES:
            raise PipelineError(f"{label}: larger than {MAX_PIPELINE_FILE_BYTES} bytes")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PipelineError(f"{label}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise PipelineError(f"{label}: cannot be read ({exc.strerror or exc})") from None


def _user_sources(folder: Path) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """The readable pipeline files of folder, and those that could not be read (and why).

    Files are named `pipelines_dir/<file name>`: what the API shows never holds the
    server's own paths (the start-up log names the folder).
    """
    if not folder.is_dir():
        raise PipelineError(f"{USER_DIR_LABEL}: pipelines folder does not exist")
    sources: list[tuple[str, str]] = []
    unreadable: dict[str, str] = {}
    try:
        paths = sorted(folder.glob("*.json"))
    except OSError as exc:
        raise PipelineError(f"{USER_DIR_LABEL}: cannot be listed ({exc.strerror or exc})") from None
    for path in paths:
        try:
            label = f"{USER_DIR_LABEL}/{path.name}"
            sources.append((label, _read_pipeline_file(path, label)))
        except PipelineError as exc:
            unreadable[label] = str(exc)
    return sources, unreadable


def load_catalog(registry: PluginRegistry, user_dir: Path | None = None) -> PipelineCatalog:
    """Load the built-in pipelines and those in user_dir, validating each against the plugins.

    A file that cannot be read (not UTF-8, a directory, a broken symlink) or is not a
    valid pipeline is recorded in `refused` with a message naming the
    file and the problem; it is never dropped silently. A valid pipeline whose tools cannot
    run here (a missing model) is listed as unavailable with the reason.
    """
    catalog = PipelineCatalog()
    sources = _builtin_sources()
    if user_dir is not None:
        try:
            user_sources, unreadable = _user_sources(user_dir)
        except PipelineError as exc:
            catalog.refused[USER_DIR_LABEL] = str(exc)
        else:
            sources += user_sources
            catalog.refused.update(unreadable)
    for source, text in sources:
        try:
            definition = parse_definition(text, source)
            definition.check_tools(registry)
        except PipelineError as exc:
            message = str(exc) if str(exc).startswith(source) else f"{source}: {exc}"
            catalog.refused[source] = message
            continue
        if definition.id in catalog.pipelines:
            catalog.refused[source] = (
                f"{source}: pipeline id {definition.id!r} is already defined by "
                f"{catalog.pipelines[definition.id].source}"
            )
            continue
        reasons = []
        for node in definition.nodes:
            tool = registry.tool(node.plugin_type, node.tool_type)
            reason = tool.unavailable_reason() if tool is not None else None
            if reason:
                reasons.append(f"{node.plugin_type}.{node.tool_type}: {reason}")
        catalog.pipelines[definition.id] = PipelineEntry(
            definition, source, "; ".join(reasons) or None
        )
    return catalog
