"""GET /v1/pipelines: every pipeline, its nodes, and whether it can run here."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from forgesyte.api.access import READ
from forgesyte.api.auth import Caller
from forgesyte.api.deps import ContextDep, v1_router
from forgesyte.api.schemas import PipelineOut, PipelinesOut

router = v1_router("pipelines")


@router.get("/pipelines", response_model=PipelinesOut)
def list_pipelines(context: ContextDep, caller: Annotated[Caller, Depends(READ)]) -> PipelinesOut:
    """Every loaded pipeline (available or not, and why), refused files and broken plugins."""
    catalog = context.catalog
    pipelines = [  # each definition as stored, and whether it can run here
        PipelineOut(
            **entry.definition.model_dump(),
            available=entry.available,
            unavailable_reason=entry.unavailable_reason,
        )
        for entry in (catalog.pipelines[pipeline_id] for pipeline_id in catalog.ids())
    ]
    return PipelinesOut(
        pipelines=pipelines,
        refused_pipelines=dict(catalog.refused),
        broken_plugins=dict(context.registry.broken),
    )
