"""Serving's routes as an OpenAPI 3.1 document (``GET /openapi.json``), for clients and fuzzers.

The document is the same for every caller: it names routes and formats, never a model. A model's
own fields are its Open Inference Protocol metadata (``GET /v2/models/{name}``), for its members.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic_core import to_json

_VALUE = {"type": ["number", "integer", "string", "boolean", "null"]}
_ROW = {"type": "object", "additionalProperties": _VALUE,
        "description": "one row: the model's fields, or the raw record as its source exports it, which the "
                       "model version's pipeline treats (GET /v2/models/{name} lists both: inputs, and "
                       "parameters.raw_record)"}
_TENSOR = {"type": "object", "required": ["name", "shape", "datatype", "data"], "properties": {
    "name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
    "datatype": {"type": "string", "enum": ["BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32",
                                            "UINT64", "FP16", "FP32", "FP64", "BYTES"]},
    "data": {"type": "array", "items": {"oneOf": [_VALUE, {"type": "array"}]}}}}
_SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
        "type": {"type": "string"}, "message": {"type": "string"},
        "problems": {"type": "array", "items": {"type": "string"}}}}}},
    "Rows": {"oneOf": [_ROW, {"type": "array", "items": _ROW}]},
    "MLflowRequest": {"type": "object", "minProperties": 1, "maxProperties": 2, "properties": {
        "dataframe_split": {"type": "object", "properties": {
            "columns": {"type": "array", "items": {"type": "string"}},
            "data": {"type": "array", "items": {"type": "array", "items": _VALUE}}}},
        "dataframe_records": {"type": "array", "items": _ROW},
        "instances": {"type": "array", "items": _ROW},
        "inputs": {"type": "object", "additionalProperties": {"type": "array", "items": _VALUE}},
        "params": {"type": "object"}}},
    "InferenceRequest": {"type": "object", "required": ["inputs"], "properties": {
        "id": {"type": "string"}, "inputs": {"type": "array", "items": _TENSOR}}},
    "Labels": {"type": "array", "items": {"type": "object", "required": ["request_id", "label"], "properties": {
        "request_id": {"type": "string"},
        "row": {"type": "integer", "minimum": 0, "description": "the row, for a request of several rows"},
        "label": {"type": ["number", "integer", "string", "boolean"]}}}},
}
_PARAMETERS = {
    "name": {"name": "name", "in": "path", "required": True, "description": "the use case",
             "schema": {"type": "string"}},
    "version": {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}},
}
_ERRORS = {str(code): {"description": why, "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/Error"}}}} for code, why in (
        (400, "not JSON"), (401, "no valid bearer token"), (403, "the caller's roles do not allow it"),
        (404, "not served, or not the caller's"), (413, "body too large"), (422, "a field breaks its rule"),
        (503, "still loading"), (504, "prediction timed out"))}


def _operation(summary: str, params: tuple[str, ...] = (), body: str | None = None, *,
               open_: bool = False, csv: bool = False, text: bool = False) -> dict[str, Any]:
    ok = {"text/plain": {"schema": {"type": "string"}}} if text else {"application/json": {"schema": {}}}
    operation: dict[str, Any] = {
        "summary": summary, "parameters": [{"$ref": f"#/components/parameters/{p}"} for p in params],
        "responses": {"200": {"description": "OK", "content": ok}, **_ERRORS}}
    if open_:
        operation["security"] = []
    if body is not None:
        content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}}
        if csv:
            content["text/csv"] = {"schema": {"type": "string"}}
        operation["requestBody"] = {"required": True, "content": content}
    return operation


def _paths() -> dict[str, Any]:
    model, version = ("name",), ("name", "version")
    probe = {"get": _operation("probe", open_=True)}
    return {
        "/health/live": probe, "/health/ready": probe, "/v2/health/live": probe, "/v2/health/ready": probe,
        "/v2": {"get": _operation("Open Inference Protocol server metadata", open_=True)},
        "/models": {"get": _operation("the caller's served models")},
        "/metrics": {"get": _operation("Prometheus metrics of the caller's use cases", text=True)},
        "/v2/models/{name}": {"get": _operation("model metadata: its fields and types", model)},
        "/v2/models/{name}/versions/{version}": {"get": _operation("model version metadata", version)},
        "/v2/models/{name}/ready": {"get": _operation("model readiness", model)},
        "/v2/models/{name}/versions/{version}/ready": {"get": _operation("model version readiness", version)},
        "/v2/models/{name}/infer": {"post": _operation("predict (Open Inference Protocol)", model,
                                                       "InferenceRequest")},
        "/v2/models/{name}/versions/{version}/infer": {"post": _operation("predict with one version", version,
                                                                          "InferenceRequest")},
        "/predict/{name}": {"post": _operation("predict (plain JSON rows)", model, "Rows")},
        "/invocations/{name}": {"post": _operation("predict (MLflow scoring)", model, "MLflowRequest", csv=True)},
        "/models/{name}/invocations": {"post": _operation("predict (MLflow scoring)", model, "MLflowRequest",
                                                          csv=True)},
        "/feedback/{name}": {"post": _operation("ground-truth labels by request id", model, "Labels")},
    }


@functools.cache
def document() -> bytes:
    """The OpenAPI document as JSON bytes, built once."""
    return to_json({
        "openapi": "3.1.0",
        "info": {"title": "valueloop serve", "version": "0.1.0",
                 "description": "Predictions of each use case's champion; every route but the probes "
                                "needs a bearer token of a member of the use case."},
        "paths": _paths(),
        "components": {"schemas": _SCHEMAS, "parameters": _PARAMETERS,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    })
