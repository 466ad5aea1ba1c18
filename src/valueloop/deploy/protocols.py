"""The wire formats: parse a request body into validated columns, render a batch's answer and
render a refusal, each the way its own clients expect (:class:`Wire`).

- Open Inference Protocol v2: one tensor per field (shape ``[N]`` or ``[N, 1]``), or one tensor
  of shape ``[N, F]`` whose columns are the signature's fields in order.
- MLflow scoring: ``dataframe_split``, ``dataframe_records``, ``instances``, ``inputs`` (JSON),
  or CSV with a header row; answers ``{"predictions": ...}`` as the model's pyfunc would. In
  MLflow-compatible mode the bodies are byte for byte those of ``mlflow models serve``, errors
  ``{"error_code": ..., "message": ...}`` included.
- Plain: ``POST /predict/{usecase}`` with one JSON object or a list of them.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic_core import from_json, to_json

from valueloop.deploy import oip_binary
from valueloop.deploy.model import Prediction, ServedModel
from valueloop.deploy.raw import Contract
from valueloop.errors import InvalidInput, UnsupportedMediaType, ValueloopError

Columns = dict[str, list[Any]]

#: Open Inference Protocol datatypes each signature type takes.
_OIP_TAKES = {
    "double": ("FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"),
    "long": ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"),
    "boolean": ("BOOL",),
    "string": ("BYTES",),
    "datetime": ("BYTES",),
}
_OIP_TAKES["float"], _OIP_TAKES["integer"] = _OIP_TAKES["double"], _OIP_TAKES["long"]
_OIP_NATIVE = {"double": "FP64", "float": "FP32", "long": "INT64", "integer": "INT32", "boolean": "BOOL",
               "string": "BYTES", "datetime": "BYTES"}
MLFLOW_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
MLFLOW_CONTENT_TYPES = ("application/json", "text/csv")
#: MLflow's error code for each status (mlflow.exceptions.ERROR_CODE_TO_HTTP_STATUS, inverted)
_MLFLOW_CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "RESOURCE_DOES_NOT_EXIST",
                 409: "RESOURCE_CONFLICT", 429: "REQUEST_LIMIT_EXCEEDED", 500: "INTERNAL_ERROR",
                 503: "TEMPORARILY_UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
Headers = list[tuple[bytes, bytes]]
JSON = b"application/json"


@dataclass
class Request:
    """A parsed prediction request: its validated columns, the client's id for it if any, and
    (Open Inference Protocol) the request document, for the outputs it asks for."""

    columns: Columns
    request_id: str | None = None
    doc: dict[str, Any] = field(default_factory=dict)


class Wire(Protocol):
    """One wire format: how its clients send a request and expect an answer or a refusal."""

    def parse(self, model: ServedModel, body: bytes, headers: Mapping[str, str]) -> Request: ...

    def answer(self, model: ServedModel, rid: str, p: Prediction, request: Request) -> tuple[bytes, Headers]: ...

    def error(self, exc: ValueloopError) -> tuple[int, bytes, bytes]:
        """The refusal's status, body and content type."""
        ...


def error_body(exc: ValueloopError) -> bytes:
    """valueloop's own error body: the error's kind, its message and each problem."""
    return to_json({"error": {"type": type(exc).__name__, "message": exc.message, "problems": exc.problems}})


def _one_line(exc: ValueloopError) -> str:
    return f"{exc.message}: {'; '.join(exc.problems)}" if exc.problems else exc.message


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise InvalidInput("body is empty: send a JSON document")
    try:
        return from_json(body)
    except ValueError as exc:
        raise ValueloopError(f"body is not valid JSON: {exc}") from None


def rows_in(columns: Columns) -> int:
    return len(next(iter(columns.values()))) if columns else 0


# ---- plain ------------------------------------------------------------------------------------

def plain_request(validator: Contract, doc: Any) -> Columns:
    if isinstance(doc, dict):
        return validator.records([doc])
    if isinstance(doc, list):
        return validator.records(doc)
    raise InvalidInput(f"body: expected a JSON object (one row) or a list of objects, got {type(doc).__name__}")


def plain_response(request_id: str, version: str, p: Prediction) -> dict[str, Any]:
    answer: dict[str, Any] = {"request_id": request_id, "model_version": version, "predictions": p.labels}
    if p.probabilities is not None:  # of the positive class; of every class for 3 classes or more
        answer["probabilities"] = p.probabilities if p.classes is None else p.classes
    return answer


class Plain:
    def parse(self, model: ServedModel, body: bytes, headers: Mapping[str, str]) -> Request:
        return Request(plain_request(model.contract, parse_json(body)))

    def answer(self, model: ServedModel, rid: str, p: Prediction, request: Request) -> tuple[bytes, Headers]:
        return to_json(plain_response(rid, model.version, p)), []

    def error(self, exc: ValueloopError) -> tuple[int, bytes, bytes]:
        return exc.http_status, error_body(exc), JSON


# ---- MLflow scoring ---------------------------------------------------------------------------

def _mlflow_rows(validator: Contract, value: Any, field: str) -> Columns:
    if isinstance(value, dict):
        return validator.columns_of({k: v if isinstance(v, list) else [v] for k, v in value.items()})
    if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
        return validator.records(value)
    if isinstance(value, list) and value and all(isinstance(r, list) for r in value):
        return validator.rows_of(value)
    raise InvalidInput(f"{field}: expected a list of records, a list of rows or an object of columns")


def mlflow_request(validator: Contract, body: bytes, content_type: str) -> Columns:
    if content_type.startswith("text/csv"):
        return csv_request(validator, body)
    doc = parse_json(body)
    if not isinstance(doc, dict):
        raise InvalidInput(f"body: expected an object with one of {', '.join(MLFLOW_FORMATS)}")
    given = [k for k in MLFLOW_FORMATS if k in doc]
    unknown = sorted(set(doc) - set(MLFLOW_FORMATS) - {"params"})
    if len(given) != 1 or unknown:
        raise InvalidInput(f"body: expected exactly one of {', '.join(MLFLOW_FORMATS)} (and optional params), "
                           f"got {', '.join(sorted(doc)) or 'nothing'}")
    key = given[0]
    value = doc[key]
    if key == "dataframe_split":
        if not isinstance(value, dict) or not isinstance(value.get("data"), list):
            raise InvalidInput("dataframe_split: expected {\"columns\": [...], \"data\": [[...], ...]}")
        columns = value.get("columns") or validator.names
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise InvalidInput("dataframe_split.columns: expected a list of field names")
        if not value["data"]:
            raise InvalidInput("input is empty: send at least one row")
        return validator.rows_of(value["data"], columns)
    if key == "dataframe_records":
        if not isinstance(value, list):
            raise InvalidInput("dataframe_records: expected a list of objects")
        return validator.records(value)
    return _mlflow_rows(validator, value, key)


def _from_text(kind: str, text: str) -> Any:
    """CSV cells are text: numbers are parsed, an empty cell is null, booleans are true/false."""
    if text == "":
        return None
    try:
        if kind in ("double", "float"):
            return float(text)
        if kind in ("long", "integer"):
            return int(text) if text.lstrip("-").isdigit() else float(text)
    except ValueError:
        return text  # refused by the validator with the column's rule
    if kind == "boolean":
        return {"true": True, "false": False}.get(text.lower(), text)
    return text


def csv_request(validator: Contract, body: bytes) -> Columns:
    try:
        rows = list(csv.reader(io.StringIO(body.decode())))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInput(f"body: not valid UTF-8 CSV: {exc}") from None
    if len(rows) < 2:
        raise InvalidInput("body: CSV needs a header row and at least one row of values")
    header, data = rows[0], rows[1:]
    kinds = {c.name: c.type for c in validator.columns}
    parsed = [[_from_text(kinds.get(h, "string"), cell) for h, cell in zip(header, row, strict=False)]
              if len(row) == len(header) else row for row in data]
    return validator.rows_of(parsed, header)


def mlflow_response(request_id: str, version: str, p: Prediction) -> dict[str, Any]:
    return {"predictions": p.pyfunc, "model_version": version, "request_id": request_id}


@dataclass(frozen=True)
class MLflow:
    """MLflow's scoring protocol; ``compat``: answers as ``mlflow models serve`` writes them
    (Python's ``json.dumps``), the request id and model version in the headers only."""

    compat: bool = False

    def parse(self, model: ServedModel, body: bytes, headers: Mapping[str, str]) -> Request:
        content_type = headers.get("content-type", "application/json")
        if content_type.split(";")[0].strip().lower() not in MLFLOW_CONTENT_TYPES:
            raise UnsupportedMediaType(f"content type {content_type[:64]!r} is not supported; send one of "
                                       f"{', '.join(MLFLOW_CONTENT_TYPES)}")
        return Request(mlflow_request(model.contract, body, content_type))

    def answer(self, model: ServedModel, rid: str, p: Prediction, request: Request) -> tuple[bytes, Headers]:
        if self.compat:
            return json.dumps({"predictions": p.pyfunc}).encode(), []
        return to_json(mlflow_response(rid, model.version, p)), []

    def error(self, exc: ValueloopError) -> tuple[int, bytes, bytes]:
        if not self.compat:
            return exc.http_status, error_body(exc), JSON
        if isinstance(exc, UnsupportedMediaType):
            return 415, exc.message.encode(), b"text/plain; charset=utf-8"
        status = 400 if exc.http_status in (413, 422) else exc.http_status
        code = _MLFLOW_CODES.get(status, "INTERNAL_ERROR")
        return status, json.dumps({"error_code": code, "message": _one_line(exc)}).encode(), JSON


# ---- Open Inference Protocol v2 ---------------------------------------------------------------

def _flat(data: Any) -> list[Any]:
    if isinstance(data, list) and data and isinstance(data[0], list):
        return [v for part in data for v in _flat(part)]
    return data if isinstance(data, list) else [data]


def oip_request(validator: Contract, doc: Any) -> tuple[Columns, str | None]:
    """The columns of an inference request, and its ``id`` when the client gave one."""
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list) or not doc["inputs"]:
        raise InvalidInput("inputs: expected a non-empty list of tensors {name, shape, datatype, data}")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput(f"id: expected a string, got {request_id!r}")
    kinds = {c.name: c.type for c in validator.columns}
    tensors = doc["inputs"]
    problems = []
    for i, t in enumerate(tensors):
        if not isinstance(t, dict) or not {"name", "shape", "datatype", "data"} <= set(t):
            problems.append(f"inputs[{i}]: expected a tensor with name, shape, datatype and data")
            continue
        shape = t["shape"]
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            problems.append(f"inputs[{i}].shape: expected a list of sizes, got {shape!r}")
    if problems:
        raise InvalidInput(f"inference request is invalid ({len(problems)} problem(s))", problems=problems)
    if len(tensors) == 1 and tensors[0]["name"] not in kinds and len(tensors[0]["shape"]) == 2:
        t = tensors[0]
        n, width = t["shape"]
        data = _flat(t["data"])
        if width != len(validator.names) or len(data) != n * width:
            raise InvalidInput(f"inputs[0] ({t['name']}): shape {t['shape']} with {len(data)} values does not fit "
                               f"[rows, {len(validator.names)}] for fields {', '.join(validator.names)}")
        wrong = sorted({kinds[n] for n in validator.names if t["datatype"] not in _OIP_TAKES.get(kinds[n], ())})
        if wrong:
            raise InvalidInput(f"inputs[0] ({t['name']}).datatype: {t['datatype']} does not fit the column "
                               f"type(s) {', '.join(wrong)}")
        return validator.rows_of([data[r * width:(r + 1) * width] for r in range(n)]), request_id
    columns: dict[str, list[Any]] = {}
    for i, t in enumerate(tensors):
        name, datatype, data = t["name"], t["datatype"], _flat(t["data"])
        if name in kinds and datatype not in _OIP_TAKES.get(kinds[name], ()):
            problems.append(f"inputs[{i}] ({name}).datatype: {datatype} does not fit column type {kinds[name]}; "
                            f"use {' or '.join(_OIP_TAKES[kinds[name]][:3])}")
        size = 1
        for d in t["shape"]:
            size *= d
        if len(data) != size:
            problems.append(f"inputs[{i}] ({name}).data: {len(data)} value(s) do not fill shape {t['shape']}")
        columns[name] = data
    if problems:
        raise InvalidInput(f"inference request is invalid ({len(problems)} problem(s))", problems=problems)
    return validator.columns_of(columns), request_id


def oip_response(name: str, request_id: str, version: str, p: Prediction,
                 outputs: Mapping[str, str]) -> dict[str, Any]:
    """The answer with every output the model produces, each with its declared datatype."""
    data = {"predict": p.labels, "probability": p.probabilities}
    return {"model_name": name, "model_version": version, "id": request_id, "outputs": [
        {"name": o, "datatype": datatype, "shape": [len(data[o])], "data": data[o]} for o, datatype in outputs.items()]}


def oip_metadata(name: str, versions: list[str], model: ServedModel) -> dict[str, Any]:
    """The model's metadata: the signature's inputs and exactly the outputs infer returns; with a
    pipeline, ``parameters.raw_record`` says what a client may send instead: the source's raw
    record, treated on the way in."""
    inputs = [{"name": c.name, "datatype": _OIP_NATIVE[c.type], "shape": [-1], "parameters": c.describe()}
              for c in model.validator.columns]
    meta = {"name": name, "versions": versions, "platform": "mlflow-sklearn", "inputs": inputs,
            "outputs": [{"name": o, "datatype": d, "shape": [-1]} for o, d in model.outputs.items()]}
    if model.raw is not None:
        meta["parameters"] = {"raw_record": model.raw.describe()}
    return meta


def _requested(doc: dict[str, Any], produced: Mapping[str, str]) -> list[str]:
    """The outputs the request asks for (all when it names none); an unknown name is refused."""
    asked = doc.get("outputs")
    if asked is None:
        return list(produced)
    if not isinstance(asked, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in asked):
        raise InvalidInput("outputs: expected a list of {\"name\": ...} objects")
    unknown = [o["name"][:64] for o in asked if o["name"] not in produced]
    if unknown:
        raise InvalidInput(f"outputs: {', '.join(unknown)} is not an output of this model; it has "
                           f"{', '.join(produced)}")
    return [o["name"] for o in asked]


class OpenInference:
    """The Open Inference Protocol v2 over REST, with the binary tensor data extension; a refusal
    is ``{"error": "<message>"}`` (the problems also listed under ``problems``), 400 for a
    request the server cannot take."""

    def parse(self, model: ServedModel, body: bytes, headers: Mapping[str, str]) -> Request:
        header = headers.get(oip_binary.HEADER)
        doc = oip_binary.decode_request(body, header) if header is not None else parse_json(body)
        columns, request_id = oip_request(model.contract, doc)
        _requested(doc, model.outputs)
        return Request(columns, request_id, doc)

    def answer(self, model: ServedModel, rid: str, p: Prediction, request: Request) -> tuple[bytes, Headers]:
        wanted = _requested(request.doc, model.outputs)  # the model that answered: maybe not the parser's
        answer = oip_response(model.usecase, rid, model.version, p, {o: model.outputs[o] for o in wanted})
        body, header_length = oip_binary.encode_response(answer, oip_binary.binary_outputs(request.doc, wanted))
        if header_length is None:
            return body, []
        return body, [(b"content-type", b"application/octet-stream"),
                      (oip_binary.HEADER.encode(), str(header_length).encode())]

    def error(self, exc: ValueloopError) -> tuple[int, bytes, bytes]:
        status = 400 if exc.http_status == 422 else exc.http_status
        return status, to_json({"error": _one_line(exc), "problems": exc.problems}), JSON
