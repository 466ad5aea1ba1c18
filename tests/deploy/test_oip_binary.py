"""The binary tensor data extension, read and written as tritonclient writes and reads it: the
client's own request builder makes the bodies, its own result parser reads the answers."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.http._utils import _get_inference_request

from valueloop.deploy.oip_binary import binary_outputs, decode_request, encode_response
from valueloop.errors import InvalidInput


def _client_request(inputs: list[triton.InferInput],
                    outputs: list[triton.InferRequestedOutput] | None = None) -> tuple[bytes, int | None]:
    return _get_inference_request(inputs=inputs, request_id="r1", outputs=outputs, sequence_id=0,
                                  sequence_start=False, sequence_end=False, priority=0, timeout=None,
                                  custom_parameters=None)


def _input(name: str, array: np.ndarray, datatype: str, binary: bool = True) -> triton.InferInput:
    tensor = triton.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


def test_every_datatype_the_client_sends_binary_comes_back_as_its_values() -> None:
    tenure = np.array([3, 40, 7], dtype=np.int64)
    charges = np.array([19.5, 80.25, 1e-3], dtype=np.float64)
    small = np.array([1.5, -2.0, 0.0], dtype=np.float32)
    flags = np.array([True, False, True])
    plans = np.array(["basic", "premium plus", "ünïcode"], dtype=np.object_)
    body, header = _client_request([_input("tenure", tenure, "INT64"), _input("charges", charges, "FP64"),
                                    _input("small", small, "FP32"), _input("flag", flags, "BOOL"),
                                    _input("plan", plans, "BYTES"),
                                    _input("json", np.array([1, 2, 3], dtype=np.int32), "INT32", binary=False)])
    assert header is not None
    doc = decode_request(body, str(header))
    data = {t["name"]: t["data"] for t in doc["inputs"]}
    assert data == {"tenure": [3, 40, 7], "charges": [19.5, 80.25, 1e-3], "small": [1.5, -2.0, 0.0],
                    "flag": [True, False, True], "plan": ["basic", "premium plus", "ünïcode"], "json": [1, 2, 3]}
    assert doc["id"] == "r1" and doc["parameters"] == {"binary_data_output": True}


@pytest.mark.parametrize(("mangle", "expected"), [
    (lambda body, n: (body[:-1], str(n)), "does not fit"),
    (lambda body, n: (body + b"\x00", str(n)), "belong to no tensor"),
    (lambda body, n: (body, str(len(body) + 1)), "is not a length within"),
    (lambda body, n: (body, "abc"), "is not a length within"),
    (lambda body, n: (body, str(n - 1)), "is not valid JSON"),
])
def test_a_malformed_binary_body_is_refused_naming_what_does_not_fit(mangle, expected: str) -> None:
    body, header = _client_request([_input("tenure", np.array([1, 2], dtype=np.int64), "INT64")])
    with pytest.raises(InvalidInput, match=expected):
        decode_request(*mangle(body, header))


def test_bytes_elements_that_run_past_their_data_are_refused() -> None:
    header = b'{"inputs":[{"name":"plan","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":6}}]}'
    with pytest.raises(InvalidInput, match="runs past"):
        decode_request(header + b"\x09\x00\x00\x00ab", str(len(header)))


def test_the_client_reads_binary_outputs_as_the_values_written() -> None:
    answer = {"model_name": "churn", "model_version": "2", "id": "r1", "outputs": [
        {"name": "predict", "datatype": "INT64", "shape": [3], "data": [0, 1, 1]},
        {"name": "probability", "datatype": "FP64", "shape": [3], "data": [0.1, 0.9, 0.75]},
        {"name": "label", "datatype": "BYTES", "shape": [3], "data": ["stay", "churn", "churn"]}]}
    body, header = encode_response(answer, {"predict", "probability", "label"})
    result = triton.InferResult.from_response_body(body, header_length=header)
    assert result.as_numpy("predict").tolist() == [0, 1, 1]
    assert result.as_numpy("probability").tolist() == [0.1, 0.9, 0.75]
    assert result.as_numpy("label").tolist() == [b"stay", b"churn", b"churn"]


def test_outputs_are_binary_as_the_client_asks() -> None:
    produced = ["predict", "probability"]
    assert binary_outputs({"parameters": {"binary_data_output": True}}, produced) == {"predict", "probability"}
    assert binary_outputs({}, produced) == set()
    asked = {"outputs": [{"name": "predict", "parameters": {"binary_data": True}}, {"name": "probability"}]}
    assert binary_outputs(asked, produced) == {"predict"}
    body, header = encode_response({"outputs": [{"name": "predict", "datatype": "INT64", "shape": [1],
                                                 "data": [1]}]}, set())
    assert header is None and triton.InferResult.from_response_body(body).as_numpy("predict").tolist() == [1]
