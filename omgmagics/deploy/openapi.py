"""The model server's OpenAPI 3.0 description, written from the bundle's signature (core layer).

``GET /openapi.json`` serves it (behind the bearer token when one is set, like ``/version``): the
request schema of ``POST /predict`` is the signature itself (types, categories, nullable fields, no
unknown field, at most ``max_batch`` records), and every answer the server can give is listed. Client
generators read it; the test suite fuzzes the server from it with Schemathesis.
"""

from __future__ import annotations

from typing import Any

_KINDS = {"integer": {"type": "integer"}, "number": {"type": "number"},
          "boolean": {"type": "boolean"}, "string": {"type": "string"},
          "datetime": {"type": "string", "format": "date-time"}}


def _column(col: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = dict(_KINDS.get(col["type"], {"type": "string"}))
    if col["type"] == "integer":  # what a float64 holds exactly (larger ones get a 422)
        schema.update(minimum=-(2**53) + 1, maximum=2**53 - 1)
    if "categories" in col:
        schema["enum"] = list(col["categories"])
    if col.get("nullable", True):
        schema["nullable"] = True
    return schema


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {
        "type": "object", "properties": {"detail": {}, "message": {"type": "string"}}}}}}


def openapi_schema(signature: dict[str, Any], *, title: str, version: str, max_batch: int,
                   auth: bool) -> dict[str, Any]:
    """The OpenAPI document of a server for `signature`."""
    record = {"type": "object", "additionalProperties": False,
              "properties": {c["name"]: _column(c) for c in signature["columns"]},
              "required": [c["name"] for c in signature["columns"]]}
    prediction = {"type": "object", "properties": {
        "request_id": {"type": "string"}, "model_version": {"type": "string"},
        "prediction": {"nullable": True}, "score": {"type": "number", "nullable": True},
        "probabilities": {"type": "object", "nullable": True}}}
    security = [{"bearer": []}] if auth else []
    errors = {"401": _error("missing or wrong bearer token")} if auth else {}
    json_ok = {"200": {"description": "OK", "content": {"application/json": {"schema": {
        "type": "object"}}}}}
    predict = {
        "summary": "Predict one record or a batch",
        "operationId": "predict",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
            {"$ref": "#/components/schemas/Record"},
            {"type": "array", "items": {"$ref": "#/components/schemas/Record"}, "minItems": 1,
             "maxItems": int(max_batch)}]}}}},
        "responses": {"200": {"description": "the prediction(s)", "content": {
            "application/json": {"schema": {"oneOf": [prediction, {"type": "object", "properties": {
                "predictions": {"type": "array", "items": prediction}}}]}}}},
            "413": _error("the body exceeds serving.max_body_mb"),
            "415": _error("the body is not sent as application/json"),
            "422": _error("a record does not match the signature (the field is named)"),
            "500": _error("the model failed on valid input"), **errors},
        "security": security,
    }

    def get(summary: str, op: str, secured: bool, ok: dict[str, Any] | None = None) -> dict:
        responses = dict(ok or json_ok)
        if secured:
            responses.update(errors)
        return {"get": {"summary": summary, "operationId": op, "responses": responses,
                        "security": security if secured else []}}

    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": title, "version": str(version),
                 "description": "Generated from the bundle's signature by omg."},
        "paths": {
            "/predict": {"post": predict},
            "/health": get("Liveness", "health", False),
            "/ready": get("Readiness (503 while draining)", "ready", False,
                          {**json_ok, "503": _error("draining")}),
            "/version": get("Model version, bundle digest, feature set", "version", True),
            "/metrics": get("Prometheus metrics", "metrics", True, {"200": {
                "description": "Prometheus text format",
                "content": {"text/plain": {"schema": {"type": "string"}}}}}),
            "/openapi.json": get("This document", "openapi", True),
        },
        "components": {"schemas": {"Record": record}},
    }
    if auth:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return doc
