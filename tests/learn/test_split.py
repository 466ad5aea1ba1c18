"""The train/test cut: a registered run reproduces only if the same data and seed cut the same
test rows (its record's ``test_digest``), whatever makes the cut faster."""

from __future__ import annotations

import pandas as pd
import pytest

from valueloop.errors import InvalidInput
from valueloop.learn import dataset
from valueloop.outcomes.spec import Split

ROWS = 10_000

#: targets whose classes appear out of their sorted order, each as its dtype comes from a dataset
TARGETS = {
    "int": pd.Series([int((i * 7919) % 13 < 3) for i in range(ROWS)]),
    "str": pd.Series([("churned", "stayed", "moved")[(i * 31) % 11 % 3] for i in range(ROWS)]),
    "bool": pd.Series([(i * 7919) % 5 == 0 for i in range(ROWS)]),
    "object": pd.Series([("b", "a", "c")[(i * 31) % 11 % 3] for i in range(ROWS)], dtype=object),
}

#: the digests of the test rows as scikit-learn's stratified split on the values cut them
#: (computed before the split read the classes' codes); a change here breaks reproduction
PINNED = {
    ("int", 42): "6a791596ccb32df276f307338aae7db605fe2513642628aca4e200ade63e699d",
    ("int", 7): "dfb600f6c74bc80b786e8746e1c0302f1267396bc790a346dde5a13d80fb108b",
    ("str", 42): "ceac9e506b0e8d36dab98ed037b51b1b009ef8dadec8eb980f95f08b30875c39",
    ("str", 7): "74c5f182ab056e8758c357fbc71577aa6a955d35a781d01111796175d2c09719",
    ("bool", 42): "66c5ccb575008985155f38019c37402888aa6e6bcd5e4a406343df69bb869251",
    ("bool", 7): "911d68ed992a024f552489b85573f4741ad02038ddc64a10637dad90836949d0",
    ("object", 42): "908f1efe83535b103bf93f14efee956ba7d7460e914b652c10e42912dc414242",
    ("object", 7): "f33bca908326011bcb5bf4a4d257642e68208981c8e2690324bdcc6db5a0d8b7",
}


def _prepared(y: pd.Series) -> dataset.Prepared:
    return dataset.Prepared(frame=pd.DataFrame({"y": y}), y=y, features=[], numeric=[], categorical=[],
                            target=dataset.Target("binary"))


@pytest.mark.parametrize(("target", "seed"), list(PINNED))
def test_a_stratified_cut_stays_the_one_registered_runs_were_trained_on(target: str, seed: int) -> None:
    spec = Split(kind="stratified", test_size=0.2 if seed == 42 else 0.25, seed=seed)
    cut = dataset.split(_prepared(TARGETS[target]), spec, "classification")
    assert cut.record["test_digest"] == PINNED[target, seed]


def test_a_part_with_one_class_is_refused_by_name() -> None:
    y = pd.Series(["stayed"] * 9 + ["churned"])
    with pytest.raises(InvalidInput, match="the test set .1 rows. holds only one class"):
        dataset.split(_prepared(y), Split(kind="random", test_size=0.1, seed=0), "classification")
