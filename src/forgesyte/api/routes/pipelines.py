"""GET /v1/pipelines: every pipeline, its nodes, and whether it can run here."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from forgesyte.api.deps import ContextDep, require_api_key
from forgesyte.api.schemas import PipelineNodeOut, PipelineOut, PipelinesOut

router = APIRouter(prefix="/v1", tags=["pipelines"], dependencies=[Depends(require_api_key)])


@router.get("/pipelines", response_model=PipelinesOut)
def list_pipelines(context: ContextDep) -> PipelinesOut:
    """Every loaded pipeline (available or not, and why), refused files and broken plugins."""
    catalog = context.catalog
    pipelines = []
    for pipeline_id in catalog.ids():
        entry = catalog.pipelines[pipeline_id]
        definition = entry.definition
        pipelines.append(
            PipelineOut(
                id=definition.id,
                description=definition.description,
                available=entry.available,
                unavailable_reason=entry.unavailable_reason,
                entry_nodes=definition.entry_nodes,
                output_nodes=definition.output_nodes,
                nodes=[PipelineNodeOut(**node.model_dump()) for node in definition.nodes],
                edges=[edge.model_dump() for edge in definition.edges],
            )
        )
    return PipelinesOut(
        pipelines=pipelines,
        refused_pipelines=dict(catalog.refused),
        broken_plugins=dict(context.registry.broken),
    )
