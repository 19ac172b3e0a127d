"""JobOptions: the one definition of every job option, and the views derived from it."""

from __future__ import annotations

import pytest

from forgesyte.jobs.options import InvalidOptions, JobOptions


def test_stored_options_round_trip() -> None:
    options = JobOptions(max_frames=7, sample_fps=2.5, skip_unchanged=True)
    assert JobOptions.from_stored(options.to_json()) == options


def test_stored_options_missing_a_later_option_take_its_default() -> None:
    # a job stored before sample_fps and skip_unchanged existed
    stored = {"frame_stride": 3, "max_frames": None}
    assert JobOptions.from_stored(stored) == JobOptions(frame_stride=3)
    assert JobOptions.from_stored({}) == JobOptions()


@pytest.mark.parametrize(
    ("stored", "problem"),
    [
        ({"frame_stride": 1, "denoise": True}, "denoise"),
        ({"frame_stride": 0}, "frame_stride"),
        ({"sample_fps": 2.0, "frame_stride": 2}, "cannot be combined"),
    ],
)
def test_stored_options_this_version_cannot_honour_are_refused(
    stored: dict[str, object], problem: str
) -> None:
    with pytest.raises(InvalidOptions, match=problem):
        JobOptions.from_stored(stored)


def test_form_fields_are_text_and_empty_means_unset() -> None:
    fields = {"frame_stride": "", "max_frames": "4", "skip_unchanged": "true"}
    assert JobOptions.from_form(fields) == JobOptions(max_frames=4, skip_unchanged=True)
    with pytest.raises(InvalidOptions, match="unknown option\\(s\\): frame_strid"):
        JobOptions.from_form({"frame_strid": "2"})
    with pytest.raises(InvalidOptions, match="invalid option: max_frames"):
        JobOptions.from_form({"max_frames": "many"})


def test_parse_value_checks_one_field_against_its_bounds() -> None:
    assert JobOptions.parse_value("sample_fps", "2.5") == 2.5
    assert JobOptions.parse_value("skip_unchanged", "yes") is True
    with pytest.raises(InvalidOptions, match="frame_stride: Input should be greater"):
        JobOptions.parse_value("frame_stride", "0")


def test_form_schema_has_every_field_with_bounds_and_no_null_branch() -> None:
    schema = JobOptions.form_schema()
    assert list(schema) == list(JobOptions.model_fields)
    assert schema["max_frames"] == {
        "type": "integer",
        "minimum": 1,
        "description": JobOptions.model_fields["max_frames"].description,
    }
    assert all("anyOf" not in s and "title" not in s for s in schema.values())
