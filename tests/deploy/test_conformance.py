"""Standard clients, unchanged, against a real ``valueloop serve``: tritonclient (the Open
Inference Protocol's HTTP client, sync and aio, with its defaults: binary tensors), MLflow's
``ScoringServerClient``, and the bytes of a real ``mlflow models serve`` of the same model."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator

import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton
import tritonclient.http.aio as triton_aio
from deploy_support import Served, free_port, start_server, wait_for
from tritonclient.utils import InferenceServerException

ROW = {"birth_date": 1980, "postcode": "12", "contract": "month-to-month", "payment_method": "invoice",
       "tenure_months": 3, "monthly_charges": 80.5, "support_calls": 4, "total_charges": 241.5}
ROW2 = ROW | {"contract": "two_year", "tenure_months": 40, "support_calls": 0, "total_charges": 3000.0}
_DTYPES = {"INT64": np.int64, "FP64": np.float64, "BYTES": np.object_}


def _client(served: Served) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(served.url.removeprefix("http://"))


def _auth(served: Served, user: str = "dana") -> dict[str, str]:
    """Fresh headers for each call: tritonclient adds its own to the dict it is given."""
    return {"Authorization": f"Bearer {served.tokens[user]}"}


def _inputs(metadata: dict[str, object], rows: list[dict[str, object]], binary: bool = True) -> list[triton.InferInput]:
    tensors = []
    for spec in metadata["inputs"]:  # type: ignore[index]
        values = np.array([r[spec["name"]] for r in rows], dtype=_DTYPES[spec["datatype"]])
        tensor = triton.InferInput(spec["name"], [len(rows)], spec["datatype"])
        tensor.set_data_from_numpy(values, binary_data=binary)
        tensors.append(tensor)
    return tensors


def _expected(served: Served) -> dict[str, object]:
    answer = httpx.post(served.url + "/predict/churn", json=[ROW, ROW2], headers=_auth(served), timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_tritonclient_with_its_defaults_gets_binary_answers_equal_to_json(served: Served) -> None:
    client = _client(served)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("churn", headers=_auth(served))
    assert set(client.get_server_metadata()["extensions"]) >= {"binary_tensor_data", "statistics"}
    metadata = client.get_model_metadata("churn", headers=_auth(served))
    assert metadata["outputs"] == [{"name": "predict", "datatype": "INT64", "shape": [-1]},
                                   {"name": "probability", "datatype": "FP64", "shape": [-1]}]
    expected = _expected(served)

    result = client.infer("churn", _inputs(metadata, [ROW, ROW2]), headers=_auth(served), request_id="t-1")
    assert result.get_response()["id"] == "t-1"
    assert all("binary_data_size" in o["parameters"] for o in result.get_response()["outputs"])
    assert result.as_numpy("predict").tolist() == expected["predictions"]
    assert result.as_numpy("probability").tolist() == pytest.approx(expected["probabilities"], rel=1e-12)

    as_json = client.infer("churn", _inputs(metadata, [ROW, ROW2], binary=False), headers=_auth(served),
                           outputs=[triton.InferRequestedOutput("probability", binary_data=False)])
    assert [o["name"] for o in as_json.get_response()["outputs"]] == ["probability"]  # only what was asked
    assert as_json.as_numpy("probability").tolist() == pytest.approx(expected["probabilities"], rel=1e-12)

    packed = client.infer("churn", _inputs(metadata, [ROW, ROW2]), headers=_auth(served),
                          request_compression_algorithm="gzip", response_compression_algorithm="deflate")
    assert packed.as_numpy("predict").tolist() == expected["predictions"]

    stats = client.get_inference_statistics("churn", headers=_auth(served))["model_stats"]
    assert {s["version"] for s in stats} == {str(served.versions[0])}
    assert stats[0]["inference_stats"]["success"]["count"] >= 3
    config = client.get_model_config("churn", headers=_auth(served))
    assert [o["name"] for o in config["output"]] == ["predict", "probability"]
    assert {"name": "churn", "version": str(served.versions[0]), "state": "READY"} in \
        client.get_model_repository_index(headers=_auth(served))


def test_the_aio_client_infers_too(served: Served) -> None:
    async def run() -> list[int]:
        client = triton_aio.InferenceServerClient(served.url.removeprefix("http://"))
        try:
            metadata = await client.get_model_metadata("churn", headers=_auth(served))
            result = await client.infer("churn", _inputs(metadata, [ROW, ROW2]), headers=_auth(served))
            return result.as_numpy("predict").tolist()
        finally:
            await client.close()

    assert asyncio.run(run()) == _expected(served)["predictions"]


def _refusal(call) -> InferenceServerException:  # type: ignore[no-untyped-def]
    with pytest.raises(InferenceServerException) as caught:
        call()
    return caught.value


def test_every_refusal_is_an_exception_the_client_can_print(served: Served) -> None:
    """The client reads ``{"error": "<message>"}``; with an object there, ``str()`` of its
    exception raised TypeError on every 401, 404, 400 and 413."""
    client = _client(served)
    metadata = client.get_model_metadata("churn", headers=_auth(served))
    rows = _inputs(metadata, [ROW])
    number_contract = triton.InferInput("contract", [1], "INT64")
    number_contract.set_data_from_numpy(np.array([1], dtype=np.int64))
    cases = {
        "401": (lambda: client.infer("churn", rows), "missing bearer token"),
        "404": (lambda: client.infer("nope", rows, headers=_auth(served)), "model 'nope' is not served"),
        "400": (lambda: client.infer("churn", [t for t in rows if t.name() != "contract"] + [number_contract],
                                     headers=_auth(served)),
                "inputs[7] (contract).datatype: INT64 does not fit column type string; use BYTES"),
        "unknown output": (lambda: client.infer("churn", rows, headers=_auth(served),
                                                outputs=[triton.InferRequestedOutput("shap")]),
                           "shap is not an output of this model; it has predict, probability"),
        "load": (lambda: client.load_model("churn", headers=_auth(served)), "the registry decides what is served"),
    }
    for name, (call, message) in cases.items():
        refused = _refusal(call)
        assert message in str(refused), (name, str(refused))
        assert refused.status() == {"unknown output": "400", "load": "400"}.get(name, name), name
    too_big = "x" * 1_100_000
    big = triton.InferInput("postcode", [1], "BYTES")
    big.set_data_from_numpy(np.array([too_big], dtype=np.object_))
    refused = _refusal(lambda: client.infer("churn", [*rows[:1], big], headers=_auth(served)))
    assert refused.status() == "413" and "larger than the limit" in str(refused)


def test_protocol_errors_wrong_methods_and_unknown_routes_are_json(served: Served) -> None:
    nowhere = httpx.get(served.url + "/v2/nowhere", headers=_auth(served))
    assert nowhere.status_code == 404 and nowhere.json()["error"] == "no route GET /v2/nowhere"
    wrong = httpx.get(served.url + "/v2/models/churn/infer", headers=_auth(served))
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST" and isinstance(wrong.json()["error"], str)
    elsewhere = httpx.get(served.url + "/predict/churn", headers=_auth(served))
    assert elsewhere.status_code == 405 and elsewhere.json()["error"]["type"] == "MethodNotAllowed"
    bomb = httpx.post(served.url + "/predict/churn", headers=_auth(served) | {"Content-Encoding": "gzip"},
                      content=_gzip(b"[" + b" " * 5_000_000 + b"]"))
    assert bomb.status_code == 413 and "inflates past the limit" in bomb.text
    odd = httpx.post(served.url + "/predict/churn", headers=_auth(served) | {"Content-Encoding": "br"}, json=ROW)
    assert odd.status_code == 415 and "use gzip, deflate or none" in odd.text


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data)


@pytest.fixture(scope="module")
def compat(module_server: Served) -> Iterator[str]:
    """A second server on the same workspace, as ``valueloop serve --no-auth --mlflow-compat``."""
    server, thread, url = start_server(module_server.settings, auth=False, mlflow_compat=True)
    yield url
    server.should_exit = True  # type: ignore[attr-defined]
    thread.join(10)


@pytest.fixture(scope="module")
def mlflow_serve(module_server: Served) -> Iterator[str]:
    """A real ``mlflow models serve`` of the champion's files, in this environment."""
    from valueloop.learn.registry import verified_model_dir
    from valueloop.store import session

    with session(module_server.settings) as s:
        model_dir = verified_model_dir(s, module_server.settings, "churn", module_server.versions[0])[1]
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model_dir),
                                "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert process.poll() is None, process.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
        try:
            return httpx.get(url + "/ping").status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(up, 180)
        yield url
    finally:
        process.terminate()
        process.wait(20)


def test_mlflows_own_client_works_unchanged(served: Served, compat: str) -> None:
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    host, port = compat.removeprefix("http://").split(":")
    client = ScoringServerClient(host, int(port))
    client.wait_server_ready(timeout=30)
    assert client.get_version()
    answer = client.invoke(pd.DataFrame([ROW, ROW2]))
    probabilities = [p[1] for p in answer.get_predictions().to_numpy().tolist()]
    assert probabilities == pytest.approx(_expected(served)["probabilities"], rel=1e-12)


def test_mlflow_compatible_answers_are_byte_for_byte_mlflows(compat: str, mlflow_serve: str) -> None:
    frame = pd.DataFrame([ROW, ROW2])
    payloads = [
        {"dataframe_split": {"columns": list(ROW), "data": [list(ROW.values()), list(ROW2.values())]}},
        {"dataframe_records": [ROW, ROW2]},
        {"instances": [ROW, ROW2]},
        {"inputs": {k: [ROW[k], ROW2[k]] for k in ROW}},
    ]
    for payload in payloads:
        theirs = httpx.post(mlflow_serve + "/invocations", json=payload, timeout=60)
        ours = httpx.post(compat + "/invocations", json=payload, timeout=60)
        assert theirs.status_code == ours.status_code == 200, (payload, theirs.text, ours.text)
        assert ours.content == theirs.content, payload
        assert ours.headers["x-model-version"] and ours.headers["x-request-id"]  # ours in the headers only
    csv = {"content": frame.to_csv(index=False), "headers": {"Content-Type": "text/csv"}}
    assert httpx.post(compat + "/invocations", **csv).content == \
        httpx.post(mlflow_serve + "/invocations", **csv, timeout=60).content
    for path in ("/ping", "/health"):
        assert httpx.get(compat + path).content == httpx.get(mlflow_serve + path).content

    for bad in ({"content": b"a,b", "headers": {"Content-Type": "application/xml"}},
                {"json": {"dataframe_records": [ROW | {"contract": None, "tenure_months": "x"}]}}):
        theirs = httpx.post(mlflow_serve + "/invocations", **bad, timeout=60)  # type: ignore[arg-type]
        ours = httpx.post(compat + "/invocations", **bad)  # type: ignore[arg-type]
        assert ours.status_code == theirs.status_code, (bad, theirs.text, ours.text)
        assert ours.headers["content-type"].split(";")[0] == theirs.headers["content-type"].split(";")[0]
        if theirs.headers["content-type"].startswith("application/json"):
            assert set(ours.json()) == {"error_code", "message"} <= set(theirs.json())
            assert ours.json()["error_code"] == theirs.json()["error_code"]
