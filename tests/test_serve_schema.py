"""Fuzzing the HTTP API from its OpenAPI schema: no request may cause a server error."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

import behaviorlm as blm
from behaviorlm.serve import Limits, create_app

KEY = "fuzz-key"


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("fuzz")
    dataset = blm.preprocess(blm.simulate(100, seed=7))
    blm.train(dataset, "markov", out_dir=folder / "artifact", progress=False)
    limits = Limits(max_body_bytes=50_000, max_batch=50, max_timeline=50, max_k=100)
    app = create_app(
        folder / "artifact", f"sqlite:///{folder / 'events.db'}", api_key=KEY, limits=limits
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error(case: Any) -> None:
    response = case.call_and_validate(headers={"X-API-Key": KEY}, checks=[not_a_server_error])
    assert response.status_code < 500
    assert "Traceback" not in response.text
