"""The oldest versions pyproject.toml allows must have what knowpay calls: pip keeps an
installed version that satisfies the floor, so a floor below a feature we use breaks a start."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

UVICORN_WITH_WORKER_HEALTHCHECK_TIMEOUT = Version("0.37")
"""`uvicorn.run(timeout_worker_healthcheck=…)`, which `knowpay serve` passes, came in 0.37."""


def _floor(name: str) -> Version:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    [requirement] = [Requirement(d) for d in dependencies if Requirement(d).name == name]
    [lowest] = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
    return lowest


def test_the_oldest_uvicorn_allowed_takes_the_worker_healthcheck_timeout() -> None:
    assert _floor("uvicorn") >= UVICORN_WITH_WORKER_HEALTHCHECK_TIMEOUT
