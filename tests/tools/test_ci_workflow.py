"""The hosted CI workflow runs the repository's CI script on push and pull request."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"


def _workflow() -> dict[str, Any]:
    loaded = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_it_runs_on_push_and_pull_request() -> None:
    workflow = _workflow()
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert isinstance(triggers, dict)
    assert {"push", "pull_request"} <= set(triggers)


def test_every_job_checks_out_and_runs_ci_run_in_a_debian_python_container() -> None:
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    oldest_python = requires.removeprefix(">=")
    jobs = _workflow()["jobs"]
    assert jobs
    for name, job in jobs.items():
        image = (
            job["container"]["image"] if isinstance(job["container"], dict) else job["container"]
        )
        assert image == f"python:{oldest_python}-bookworm", name
        steps = job["steps"]
        uses = [step.get("uses", "") for step in steps]
        runs = [step.get("run", "") for step in steps]
        assert any(u.startswith("actions/checkout@") for u in uses), name
        assert "bash .ci/run" in runs, name
        checkout = next(i for i, u in enumerate(uses) if u.startswith("actions/checkout@"))
        assert checkout < runs.index("bash .ci/run"), "the script runs after the checkout"
    assert (REPO / ".ci" / "run").is_file()
