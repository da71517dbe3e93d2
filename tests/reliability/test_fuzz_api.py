"""Property-based fuzzing of the model server's HTTP API with Schemathesis, from the OpenAPI schema the
server itself serves (``GET /openapi.json``, written from the bundle's signature).

A real server process on loopback over a real ONNX bundle. Schemathesis generates bodies that fit the
schema (every type, category, null, batch size) and bodies that do not (wrong types, unknown fields,
wrong content types, empty and oversized batches): no answer may be a 5xx, every status must be one
the schema documents, and every invalid body must be rejected (4xx). The run is bounded and
deterministic (derandomized, no example database), so it cannot be flaky.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    status_code_conformance,
)

from omgmagics.deploy import process
from omgmagics.deploy.serving import serve
from tests.helpers.deploy import kill_tree, onnx_bundle_project, stop_all

EXAMPLES = 50  # per operation and generation mode


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    project, bundle = onnx_bundle_project(tmp_path_factory, "fuzz")
    report = serve(project, "fuzz", port=0, bundle=str(bundle), background=True)
    pid = report.summary["pid"]
    try:
        yield report.summary["url"]
    finally:
        kill_tree(pid)
        process.state_path(project, "fuzz").unlink(missing_ok=True)
        stop_all(project.root)


@pytest.fixture(scope="module")
def api_schema(fuzz_server):
    loaded = schemathesis.openapi.from_url(fuzz_server + "/openapi.json")
    loaded.config.update(base_url=fuzz_server, request_timeout=30)
    loaded.config.generation.update(modes=["positive", "negative"], max_examples=EXAMPLES,
                                    deterministic=True, database="none")
    return loaded


POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
# The GET endpoints take no input, so only /predict has invalid inputs to generate.
OPERATIONS = [("/predict", "POST", POSITIVE), ("/predict", "POST", NEGATIVE),
              ("/health", "GET", POSITIVE), ("/ready", "GET", POSITIVE),
              ("/version", "GET", POSITIVE), ("/metrics", "GET", POSITIVE),
              ("/openapi.json", "GET", POSITIVE)]


@pytest.mark.parametrize(("path", "method", "mode"), OPERATIONS)
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_no_input_gets_a_server_error(api_schema, path, method, mode, data):
    operation = api_schema[path][method]
    case = data.draw(operation.as_strategy(generation_mode=mode))
    checks = [not_a_server_error, status_code_conformance, content_type_conformance]
    if mode is NEGATIVE:
        checks.append(negative_data_rejection)
    case.call_and_validate(checks=checks)


def test_the_schema_is_the_signature(fuzz_server):
    doc = httpx.get(fuzz_server + "/openapi.json").json()
    record = doc["components"]["schemas"]["Record"]
    assert record["additionalProperties"] is False
    assert record["properties"]["age"]["type"] == "integer"
    assert record["properties"]["sex"]["enum"] == ["Female", "Male"]
    batch = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert batch["schema"]["oneOf"][1]["maxItems"] == 1024
    assert set(doc["paths"]) == {"/predict", "/health", "/ready", "/version", "/metrics",
                                 "/openapi.json"}


def test_the_fuzzing_reached_both_the_model_and_the_rejections(fuzz_server):
    """Runs after the fuzzing (file order): the server counted good predictions and 422s."""
    import re

    text = httpx.get(fuzz_server + "/metrics").text
    counts = {status: int(n) for status, n in re.findall(
        r'omg_requests_total\{[^}]*endpoint="/predict",status="(\d+)"\} (\d+)', text)}
    assert counts.get("200", 0) >= 10 and counts.get("422", 0) >= 10
    assert not any(status.startswith("5") for status in counts)
