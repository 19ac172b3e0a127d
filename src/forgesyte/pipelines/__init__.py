"""Pipelines: JSON DAGs of plugin tools, validated when loaded, run frame by frame."""

from forgesyte.pipelines.catalog import PipelineCatalog, PipelineEntry, load_catalog
from forgesyte.pipelines.model import PipelineDefinition, PipelineError
from forgesyte.pipelines.runner import PipelineRunner

__all__ = [
    "PipelineCatalog",
    "PipelineDefinition",
    "PipelineEntry",
    "PipelineError",
    "PipelineRunner",
    "load_catalog",
]
