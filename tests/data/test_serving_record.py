"""What a dataset version records for serving: whether its transform can run on the records of one
request (DuckDB's parser decides), and, at training, what the model is served with: a transform
that is not row-level makes training name the features serving could not compute, until the use
case declares them computed upstream."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from valueloop.data.serving import ROW, record, row_level
from valueloop.errors import InvalidInput

SOURCES = ["customers", "tickets"]


@pytest.mark.parametrize("query", [
    "SELECT * FROM customers",
    "SELECT customer_id, round(monthly_charges * tenure_months, 2) AS total FROM customers WHERE customer_id > 0",
    "SELECT c.customer_id, upper(c.contract) AS contract FROM customers AS c ORDER BY 1",
])
def test_a_projection_and_filter_of_one_source_is_row_level(query: str) -> None:
    found = row_level(query, SOURCES)
    assert found["source"] == "customers" and "not_row_level" not in found
    assert ROW in found["query"] or "*" in found["query"]


@pytest.mark.parametrize(("query", "why"), [
    ("SELECT * FROM customers JOIN tickets USING (customer_id)", "join"),
    ("SELECT customer_id, count(*) AS n FROM tickets GROUP BY customer_id", "GROUP BY"),
    ("SELECT sum(monthly_charges) AS total FROM customers", "aggregates rows (sum)"),
    ("SELECT *, avg(monthly_charges) OVER (PARTITION BY contract) AS usual FROM customers", "window"),
    ("SELECT DISTINCT contract FROM customers", "DISTINCT"),
    ("SELECT * FROM customers LIMIT 10", "LIMIT"),
    ("WITH c AS (SELECT * FROM customers) SELECT * FROM c", "WITH"),
    ("SELECT * FROM customers UNION ALL SELECT * FROM customers", "UNION"),
    ("SELECT *, (SELECT count(*) FROM tickets) AS n FROM customers", "subquery"),
])
def test_anything_that_looks_beyond_one_row_is_not(query: str, why: str) -> None:
    found = row_level(query, SOURCES)
    assert found.get("query") is None and why in found["not_row_level"], found


def _version(transform: dict[str, str | None]) -> object:
    from valueloop.data.service import ColumnView, DatasetVersionView

    schema = pa.schema([("customer_id", pa.int64()), ("contract", pa.string()), ("monthly_charges", pa.float64())])
    return DatasetVersionView(
        usecase="churn", version=3, uri="-", mode="overwrite", row_count=1,
        columns=[ColumnView(name=n, type="x") for n in ["customer_id", "contract", "monthly_charges", "usual"]],
        source_fingerprints={}, transform_hash="-", dpia_version=1, treatments={},
        serving=record({"customers": schema}, transform), quality={}, profile={}, project_dir="-", actor="dave",
        created_at=datetime.now(UTC))


def test_training_names_the_features_a_transform_that_is_not_row_level_computes() -> None:
    from valueloop.learn.serving import pipeline

    window = _version(row_level("SELECT *, avg(monthly_charges) OVER (PARTITION BY contract) AS usual "
                                "FROM customers", ["customers"]))
    with pytest.raises(InvalidInput) as refused:
        pipeline(window, ["contract", "monthly_charges", "usual"], [])
    assert "not row-level (it uses a window function)" in refused.value.message
    assert "cannot compute feature(s) usual" in refused.value.message and "model.features.upstream" in refused.value.message
    recorded, said = pipeline(window, ["contract", "monthly_charges", "usual"], ["usual"])
    assert recorded["upstream"] == ["usual"] and recorded["query"] is None
    assert "features usual are computed upstream" in said

    plain = _version(row_level("SELECT * FROM customers", ["customers"]))
    recorded, said = pipeline(plain, ["contract", "monthly_charges"], [])
    assert recorded["query"] and "transformed per record, exactly as at ingest" in said


def test_the_pipeline_never_ships_the_pseudonym_key(tmp_path) -> None:
    """A model goes to Dask workers pickled: its pipeline goes without the key (and treats raw
    records only where the key lives), and the sandbox that runs the transform never holds it."""
    import pickle

    import cloudpickle

    from valueloop.deploy.raw import RawPipeline
    from valueloop.deploy.schema import Column, Validator

    schema = pa.schema([("email", pa.string()), ("contract", pa.string())])
    recorded = record({"customers": schema}, row_level("SELECT * FROM customers", ["customers"]))
    recorded |= {"treatments": {"email": {"treatment": "pseudonymize", "params": {}, "key_id": "k1"}},
                 "features": ["contract"], "upstream": [], "dataset_columns": ["email", "contract"]}
    key = "a-secret-pseudonym-key-of-this-home"
    pipeline = RawPipeline(recorded, Validator([Column("contract", "string")]), key, tmp_path)
    treated = pipeline.features(pa.table({"email": ["ann@example.com"], "contract": ["one_year"],
                                          "name": ["Ann"]}).drop_columns(["name"]))
    assert treated.to_pylist() == [{"contract": "one_year"}]
    shipped = cloudpickle.dumps(pipeline)  # as Dask ships it
    assert key.encode() not in shipped and pickle.loads(shipped)._key is None
    sandbox = pipeline._connections()[1]
    settings = dict(sandbox.execute("SELECT name, value FROM duckdb_settings()").fetchall())
    assert settings["enable_external_access"] == "false" and settings["lock_configuration"] == "true"
