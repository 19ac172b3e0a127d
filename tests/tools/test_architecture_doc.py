"""What the docs state is what the code does: settings and their defaults, the error
statuses the API answers, the routes, the module paths.

Each statement is parsed out of README.md, docs/operations.md and docs/architecture.md
and checked against Settings, real requests on an in-process app (in-memory job store),
its routes and the source tree, so a doc that drifts from the code fails here.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from forgesyte.api.app import create_app
from forgesyte.api.context import AppContext
from forgesyte.jobs.memory_store import InMemoryJobStore
from forgesyte.pipelines.catalog import load_catalog
from forgesyte.plugins.registry import discover_plugins
from forgesyte.settings import Settings
from forgesyte.storage.errors import StorageUnavailable
from forgesyte.storage.local import LocalStorage
from tests.support.videos import write_counter_video

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "src" / "forgesyte"
DOCUMENTS = ("README.md", "docs/operations.md", "docs/architecture.md")
VARIABLE_ROW = re.compile(r"^\| `FORGESYTE_([A-Z0-9_]+)` \| ([^|]*) \|", re.M)
UNSET_WORDS = (
    "unset",
    "none",
    "empty",
    "no cap",
    "keep forever",
    "derived",
    "AWS",
    "DuckDB file",
    "cores",
)
DATA_DIR_PLACEHOLDERS = ("<data dir>", "<DATA_DIR>")


def _text(document: str) -> str:
    return (REPO / document).read_text()


def _variable_rows() -> list[tuple[str, str, str]]:
    """(document, field name, default cell) of every FORGESYTE_* row of a table."""
    return [
        (document, match[1].lower(), match[2].strip())
        for document in DOCUMENTS
        for match in VARIABLE_ROW.finditer(_text(document))
    ]


def _resolved(field: str, settings: Settings) -> str | None:
    """The value a setting resolves to when unset, for the settings that have one."""
    if field == "database_url":
        return settings.resolved_database_url()
    if field == "storage_url":
        return settings.resolved_storage_url()
    if field == "log_file":
        return str(settings.resolved_log_file())
    return None


def _literal(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def test_the_tables_name_every_setting() -> None:
    rows = _variable_rows()
    for document in ("README.md", "docs/operations.md"):
        documented = {field for where, field, _ in rows if where == document}
        assert documented == set(Settings.model_fields), document


@pytest.mark.parametrize(("document", "field", "cell"), _variable_rows())
def test_a_documented_variable_is_a_setting_with_the_documented_default(
    document: str, field: str, cell: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert field in Settings.model_fields, f"{document}: FORGESYTE_{field.upper()} is no setting"
    monkeypatch.chdir(tmp_path)  # the default data dir is relative to the working directory
    for name in Settings.model_fields:
        monkeypatch.delenv(f"FORGESYTE_{name.upper()}", raising=False)
    settings = Settings()
    default = getattr(settings, field)
    quoted = re.findall(r"`([^`]*)`", cell)
    if cell.startswith(UNSET_WORDS):
        assert default in (None, [], ""), f"{document}: {field} defaults to {default!r}, not unset"
        placeholders = [text for text in quoted if any(p in text for p in DATA_DIR_PLACEHOLDERS)]
        for text in placeholders:  # what the unset setting resolves to
            expected = text
            for placeholder in DATA_DIR_PLACEHOLDERS:
                expected = expected.replace(placeholder, str(settings.data_dir.resolve()))
            assert _resolved(field, settings) == expected, f"{document}: {field}"
        return
    assert quoted, f"{document}: no default given for {field} in {cell!r}"
    stated = quoted[0]
    if any(placeholder in stated for placeholder in DATA_DIR_PLACEHOLDERS):
        expected = stated
        for placeholder in DATA_DIR_PLACEHOLDERS:
            expected = expected.replace(placeholder, str(settings.data_dir.resolve()))
        assert _resolved(field, settings) == expected, f"{document}: {field}"
        return
    value = default.as_posix() if isinstance(default, Path) else default
    assert _literal(stated) == value, f"{document}: {field} is {value!r}, documented {stated!r}"


def test_a_stated_default_in_the_prose_is_the_setting_default() -> None:
    """E.g. "`FORGESYTE_JOB_TIMEOUT_S` (default 3600 s)" in docs/architecture.md."""
    pattern = re.compile(r"`FORGESYTE_([A-Z0-9_]+)` \(default ([0-9.]+)")
    found = [m for document in DOCUMENTS for m in pattern.finditer(_text(document))]
    assert found
    for match in found:
        assert float(match[2]) == getattr(Settings(), match[1].lower()), match[0]


# -- error statuses ---------------------------------------------------------------------


class _FullStorage(LocalStorage):
    """Local storage whose disk is full: no upload can be written."""

    def open_writer(self, key: str) -> Any:
        """Refuse, as a full disk does."""
        raise StorageUnavailable("no space left on the device")


MakeClient = Callable[..., TestClient]


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[MakeClient]:
    """In-process apps on the in-memory job store, with given settings and storage."""
    clients: list[TestClient] = []
    registry = discover_plugins()
    catalog = load_catalog(registry)

    def make(storage: LocalStorage | None = None, **overrides: Any) -> TestClient:
        context = AppContext(
            settings=Settings(data_dir=tmp_path, **overrides),
            store=InMemoryJobStore(),
            storage=storage or LocalStorage(tmp_path / "storage"),
            registry=registry,
            catalog=catalog,
        )
        client = TestClient(create_app(context), raise_server_exceptions=False)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _submit(client: TestClient, body: bytes, **params: Any) -> httpx.Response:
    headers = params.pop("headers", None)
    return client.post(
        "/v1/video/submit",
        params={"pipeline_id": "ocr_only", **params},
        files={"file": ("v.mp4", body, "video/mp4")},
        headers=headers,
    )


def _documented_statuses() -> dict[int, str]:
    errors = _text("README.md").split("### Errors", 1)[1].split("\n## ", 1)[0]
    return {int(m[1]): m[2] for m in re.finditer(r"^\| (\d{3}) \| (.*) \|$", errors, re.M)}


def test_every_documented_status_is_one_the_api_declares() -> None:
    documented = _documented_statuses()
    assert {400, 401, 404, 409, 413, 503} <= set(documented)
    app = create_app(
        AppContext(
            Settings(),
            InMemoryJobStore(),
            LocalStorage(Path("unused")),
            discover_plugins(),
            load_catalog(discover_plugins()),
        )
    )
    declared = {
        int(code)
        for operations in app.openapi()["paths"].values()
        for operation in operations.values()
        for code in operation.get("responses", {})
    }
    assert set(documented) <= declared, set(documented) - declared


def test_the_documented_situations_get_the_documented_statuses(
    make_client: MakeClient, tmp_path: Path
) -> None:
    documented = _documented_statuses()
    video = write_counter_video(tmp_path / "v.mp4", 3, size_wh=(64, 48)).read_bytes()
    client = make_client()
    answers: dict[int, list[httpx.Response]] = {
        400: [
            _submit(client, b"this is no mp4 at all"),  # not an MP4
            _submit(client, b""),  # empty file
            _submit(client, video, pipeline_id="no_such_pipeline"),  # unknown pipeline
            _submit(client, video, frame_stride=0),  # a bad option
            _submit(client, video, sample_fps=1, frame_stride=2),  # stride with sample_fps
            client.post("/v1/video/submit", content=b"x"),  # not multipart
        ],
        404: [
            client.get(f"/v1/video/status/{uuid.uuid4()}"),  # unknown job id
            client.get("/v1/video/status/not-a-job-id"),  # malformed job id
        ],
    }
    pending = _submit(client, video)
    assert pending.status_code == 200, pending.text
    job_id = pending.json()["job_id"]
    for what in ("results", "timeline", "preview"):  # of a job that is not completed
        answers[404].append(client.get(f"/v1/video/{what}/{job_id}", params={"frame_index": 0}))
    # a completed job whose upload plays: a range past its end
    store = client.app.state.context.store  # type: ignore[attr-defined]
    assert store.claim_next("w", 30) is not None
    summary = {"frames_analysed": 1, "video": {}, "playback": {"codec": "h264", "copy": False}}
    assert store.complete(uuid.UUID(job_id), "w", f"results/{job_id}.jsonl", summary)
    answers[416] = [
        client.get(f"/v1/video/source/{job_id}", headers={"Range": f"bytes={len(video)}-"})
    ]
    first = _submit(client, video, headers={"Idempotency-Key": "doc-key"})
    assert first.status_code == 200, first.text
    answers[409] = [_submit(client, video, max_frames=2, headers={"Idempotency-Key": "doc-key"})]
    guarded = make_client(api_key="secret")
    answers[401] = [
        guarded.get("/v1/pipelines"),
        guarded.get("/metrics"),
        guarded.get("/v1/pipelines", headers={"Authorization": "Bearer wrong"}),
    ]
    assert guarded.get("/v1/pipelines", headers={"X-API-Key": "secret"}).status_code == 200
    made = guarded.post(
        "/v1/keys", json={"name": "vera", "role": "viewer"}, headers={"X-API-Key": "secret"}
    )
    viewer = {"X-API-Key": made.json()["key"]}
    answers[403] = [  # a viewer submitting; a non-admin key on the keys routes
        _submit(guarded, video, headers=viewer),
        guarded.get("/v1/keys", headers=viewer),
    ]
    assert guarded.get("/healthz").status_code == 200
    small = make_client(max_upload_mb=0.001)
    answers[413] = [_submit(small, video + bytes(4096))]
    full = make_client(storage=_FullStorage(tmp_path / "full"))
    answers[503] = [_submit(full, video)]

    # A stalled upload (408), uploads over the concurrency limit (429) and a full disk (507)
    # need a client or a disk this in-process app cannot fake cheaply: tests/faults and
    # tests/hostile produce them; here they are checked against the OpenAPI above.
    assert set(answers) <= set(documented), set(answers) - set(documented)
    assert set(documented) - set(answers) <= {408, 429, 507}, "a status has no situation"
    for status, responses in answers.items():
        for response in responses:
            assert response.status_code == status, (status, documented[status], response.text)
            assert set(response.json()) == {"detail"}, response.text


# -- routes and modules -----------------------------------------------------------------


def _route_paths(routes: list[Any]) -> list[str]:
    """Every route's path, through routers that FastAPI keeps wrapped when included."""
    paths: list[str] = []
    for route in routes:
        if isinstance(getattr(route, "path", None), str):
            paths.append(route.path)
        if hasattr(route, "original_router"):
            paths.extend(_route_paths(route.original_router.routes))
    return paths


def test_every_documented_route_exists() -> None:
    app = create_app(
        AppContext(
            Settings(),
            InMemoryJobStore(),
            LocalStorage(Path("unused")),
            discover_plugins(),
            load_catalog(discover_plugins()),
        )
    )
    templates = [
        re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")
        for path in [  # the API's routes and FastAPI's own (/docs, /redoc, /openapi.json)
            *app.openapi()["paths"],
            *_route_paths(app.routes),
        ]
    ]
    documented: set[str] = set()
    for document in DOCUMENTS:
        text = _text(document)
        documented |= set(re.findall(r"http://127\.0\.0\.1:8000(/[^\s\"?`]*)", text))
        documented |= set(re.findall(r"`(?:GET|POST) (/[^\s`?]*)", text))
    assert len(documented) >= 8, documented
    for path in documented:
        concrete = re.sub(r"<[^>]+>|\{[^}]+\}", "x", path)
        served = any(t.match(concrete) or t.match(concrete + "/x") for t in templates)
        assert served, f"documented route {path} is not served"  # (its id may be left out)


def _component_rows() -> list[tuple[str, str]]:
    components = _text("docs/architecture.md").split("## Components", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z_]+(?:/|\.py))` \| (.*) \|$", components, re.M)


@pytest.mark.parametrize(("owner", "row"), _component_rows())
def test_every_module_the_architecture_names_exists(owner: str, row: str) -> None:
    assert (SOURCE / owner).exists(), owner
    package = SOURCE / owner if owner.endswith("/") else SOURCE
    for name in re.findall(r"`([a-z_/]+(?:\.py|/|/\*\.json))`", row):
        if name.startswith(("videos/", "results/<", "timelines/")):
            continue  # storage keys, not modules
        candidates = [package / name, SOURCE / name]
        assert any(
            list(c.parent.glob(c.name)) if "*" in name else c.exists() for c in candidates
        ), f"docs/architecture.md names {name} under {owner}, which does not exist"


def test_the_components_table_names_every_module() -> None:
    named = " ".join(f"`{owner}` {row}" for owner, row in _component_rows())
    missing: list[str] = []
    for module in SOURCE.rglob("*.py"):
        relative = module.relative_to(SOURCE)
        if module.name == "__init__.py" or (relative.parts[0] == "db" and len(relative.parts) > 2):
            continue  # package markers and Alembic's migration scripts
        if relative.parts[:2] == ("api", "routes"):
            continue  # "one router per resource in api/routes/"
        if f"`{module.name}`" not in named and f"`{relative}`" not in named:
            missing.append(str(relative))
    assert missing == [], f"modules docs/architecture.md does not name: {missing}"
