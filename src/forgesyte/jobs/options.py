"""The options a client can set on a job: the one definition of each (type, bounds, default,
description).

Everything else derives from JobOptions: the API's form and query parsing and its OpenAPI
schema (``form_schema``), the CLI's ``submit`` flags (``model_fields`` and ``parse_value``),
the JSON stored with a job (``to_json``) and the worker's reading of it (``from_stored``).
Adding an option is one field here, plus its tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

MAX_SAMPLE_FPS = 1000.0


class InvalidOptions(ValueError):
    """Options a client sent that JobOptions refuses; the message names each problem."""


def _describe(exc: ValidationError) -> str:
    """'field: what is wrong' for each error, joined; no input echo beyond the field name."""
    return "; ".join(
        ": ".join(
            part
            for part in (
                ".".join(str(p) for p in err["loc"]),
                str(err["msg"]).removeprefix("Value error, "),
            )
            if part
        )
        for err in exc.errors()
    )


class JobOptions(BaseModel):
    """Which frames a job analyses, whether it may reuse results of unchanged frames, and
    whether it finds the video's shots.

    frame_stride and sample_fps are two ways to thin the frames; a job uses one of them.
    detect_shots looks at every frame (small and grey) whatever the sampling.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    frame_stride: int = Field(default=1, ge=1, description="Analyse every Nth frame.")
    max_frames: int | None = Field(default=None, ge=1, description="Analyse at most N frames.")
    sample_fps: float | None = Field(
        default=None,
        gt=0,
        le=MAX_SAMPLE_FPS,
        allow_inf_nan=False,
        description="Analyse at most N frames per second of video, whatever its frame rate.",
    )
    skip_unchanged: bool = Field(
        default=False,
        description="Reuse the last analysed frame's result for frames that barely differ.",
    )
    detect_shots: bool = Field(
        default=False,
        description="Find the video's shots (cuts, fades, dissolves) on every frame, "
        "whatever the sampling; the timeline lists them.",
    )

    @model_validator(mode="after")
    def _one_way_to_thin(self) -> JobOptions:
        if self.sample_fps is not None and self.frame_stride != 1:
            raise ValueError(
                "frame_stride and sample_fps cannot be combined: choose one way to sample frames"
            )
        return self

    def to_json(self) -> dict[str, Any]:
        """The options as stored with the job (every field, stable keys)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_form(cls, fields: Mapping[str, str]) -> JobOptions:
        """Options from text fields (a form or a query string); an empty value means unset.

        Raises InvalidOptions naming unknown fields, or each field's problem.
        """
        unknown = sorted(set(fields) - set(cls.model_fields))
        if unknown:
            raise InvalidOptions(f"unknown option(s): {', '.join(unknown)}")
        try:
            return cls.model_validate({k: v for k, v in fields.items() if v != ""})
        except ValidationError as exc:
            raise InvalidOptions(f"invalid option: {_describe(exc)}") from None

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> JobOptions:
        """The options of a stored job, from the JSON to_json() wrote.

        A key the stored JSON lacks (a job stored before that option existed) takes its
        default. Raises InvalidOptions for a key this version does not know (a job stored
        by a newer version) or a value out of bounds: analysing it otherwise would not be
        what the client asked for.
        """
        try:
            return cls.model_validate(dict(stored))
        except ValidationError as exc:
            raise InvalidOptions(f"stored options are not valid: {_describe(exc)}") from None

    @classmethod
    def parse_value(cls, name: str, text: str) -> Any:
        """One option's value from text, checked against its type and bounds alone.

        Raises InvalidOptions with the field's problem (e.g. for a command-line flag).
        """
        info = cls.model_fields[name]
        annotated: Any = (
            Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        )
        try:
            return TypeAdapter(annotated).validate_python(text)
        except ValidationError as exc:
            problems = "; ".join(str(err["msg"]) for err in exc.errors())
            raise InvalidOptions(f"{name}: {problems}") from None

    @classmethod
    def form_schema(cls) -> dict[str, dict[str, Any]]:
        """Each option's JSON schema as a form field: type, bounds, default, description.

        Optional fields are described by their value's schema (an unset field is simply
        not sent), so the OpenAPI form shows the bounds directly.
        """
        properties: dict[str, dict[str, Any]] = cls.model_json_schema()["properties"]
        form = {}
        for name, schema in properties.items():
            prop = {k: v for k, v in schema.items() if k not in {"anyOf", "title"}}
            if prop.get("default", "") is None:
                del prop["default"]  # unset: the field is simply not sent
            for branch in schema.get("anyOf", []):
                if branch.get("type") != "null":
                    prop.update(branch)
            form[name] = prop
        return form
