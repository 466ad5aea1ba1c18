"""The Open Inference Protocol's binary tensor data extension (Triton's ``binary_data``).

A request whose ``Inference-Header-Content-Length`` header is set carries a JSON header of that
many bytes, then the raw data of each input whose ``parameters.binary_data_size`` is set, in the
order of the inputs. Numbers are little-endian in row-major order, BOOL one byte each, BYTES
each element's length as a little-endian uint32 followed by its bytes. An answer is binary for
the outputs the client asks so (``parameters.binary_data_output`` on the request, or
``parameters.binary_data`` on a requested output): this is tritonclient's default.

Decoding puts each binary input's values back into its ``data``, so that the JSON path validates
both forms with the same rules and messages.
"""

from __future__ import annotations

import struct
from typing import Any

from pydantic_core import from_json, to_json

from valueloop.errors import InvalidInput

HEADER = "inference-header-content-length"

#: numpy dtypes of the fixed-size datatypes, little-endian
_DTYPES = {"BOOL": "|b1", "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "UINT8": "<u1",
           "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8"}


def _bytes_elements(raw: bytes, where: str) -> list[str]:
    values, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise InvalidInput(f"{where}: BYTES data ends inside an element's 4-byte length")
        (size,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + size > len(raw):
            raise InvalidInput(f"{where}: a BYTES element of {size} byte(s) runs past the tensor's data")
        try:
            values.append(raw[offset:offset + size].decode())
        except UnicodeDecodeError:
            raise InvalidInput(f"{where}: a BYTES element is not UTF-8 text") from None
        offset += size
    return values


def _values(datatype: str, raw: bytes, where: str) -> list[Any]:
    if datatype == "BYTES":
        return _bytes_elements(raw, where)
    import numpy as np

    dtype = _DTYPES.get(datatype)
    if dtype is None:
        raise InvalidInput(f"{where}.datatype: {datatype!r} is not an Open Inference Protocol datatype")
    width = np.dtype(dtype).itemsize
    if len(raw) % width:
        raise InvalidInput(f"{where}: {len(raw)} byte(s) are not a whole number of {datatype} values")
    return np.frombuffer(raw, dtype=dtype).tolist()


def decode_request(body: bytes, header_length: str) -> Any:
    """The request's JSON document with every binary input's values in its ``data``."""
    if not header_length.isdigit() or int(header_length) > len(body):
        raise InvalidInput(f"{HEADER}: {header_length[:32]!r} is not a length within the body's {len(body)} bytes")
    split = int(header_length)
    try:
        doc = from_json(body[:split])
    except ValueError as exc:
        raise InvalidInput(f"the inference header (the first {split} bytes) is not valid JSON: {exc}") from None
    inputs = doc.get("inputs") if isinstance(doc, dict) else None
    offset = split
    for i, tensor in enumerate(inputs if isinstance(inputs, list) else []):
        parameters = tensor.get("parameters") if isinstance(tensor, dict) else None
        size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
        if size is None:
            continue
        where = f"inputs[{i}] ({tensor.get('name')})"
        if not isinstance(size, int) or size < 0 or offset + size > len(body):
            raise InvalidInput(f"{where}.parameters.binary_data_size: {size!r} does not fit the "
                               f"{len(body) - offset} byte(s) left in the body")
        tensor["data"] = _values(str(tensor.get("datatype")), body[offset:offset + size], where)
        offset += size
    if offset != len(body):
        raise InvalidInput(f"body: {len(body) - offset} byte(s) after the last binary input belong to no tensor")
    return doc


def binary_outputs(doc: dict[str, Any], produced: list[str]) -> set[str]:
    """The outputs the client wants as binary data."""
    everything = bool((doc.get("parameters") or {}).get("binary_data_output"))
    requested = {o["name"]: bool((o.get("parameters") or {}).get("binary_data", everything))
                 for o in doc.get("outputs") or []}
    return {name for name in produced if requested.get(name, everything)}


def _encoded(datatype: str, data: list[Any]) -> bytes:
    if datatype == "BYTES":
        parts = [str(v).encode() for v in data]
        return b"".join(struct.pack("<I", len(p)) + p for p in parts)
    import numpy as np

    return np.asarray(data, dtype=_DTYPES[datatype]).tobytes()


def encode_response(answer: dict[str, Any], binary: set[str]) -> tuple[bytes, int | None]:
    """The answer's bytes, and the JSON header's length when some outputs are binary."""
    if not binary:
        return to_json(answer), None
    tails = []
    for output in answer["outputs"]:
        if output["name"] in binary:
            raw = _encoded(output["datatype"], output.pop("data"))
            output["parameters"] = {**output.get("parameters", {}), "binary_data_size": len(raw)}
            tails.append(raw)
    header = to_json(answer)
    return header + b"".join(tails), len(header)
