"""Make the churn example's data locally: a CRM export with personal data and a churn label.

``period`` > 0 makes later months with real drift: older, pricier customers, and support calls
that matter more for churn than before (a changed relationship between a feature and the target).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

FIRST = ["Anna", "Bram", "Chen", "Daan", "Emma", "Fatima", "Gijs", "Hana", "Ivo", "Julia", "Kofi", "Lotte"]
LAST = ["de Vries", "Jansen", "Bakker", "Visser", "Smit", "Meijer", "Mulder", "Bos", "Peters", "Hendriks"]
CONTRACTS = np.array(["month-to-month", "one_year", "two_year"])
PAYMENTS = np.array(["card", "direct_debit", "invoice"])


def generate(rows: int = 5000, seed: int = 7, period: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed + 1000 * period)
    ids = np.arange(period * 1_000_000, period * 1_000_000 + rows)
    first = rng.choice(FIRST, rows)
    last = rng.choice(LAST, rows)
    age = np.clip(rng.normal(42 + 6 * period, 13, rows), 18, 90).astype(int)
    birth_year = 2026 - age
    birth = [f"{y}-{m:02d}-{d:02d}" for y, m, d in zip(birth_year, rng.integers(1, 13, rows), rng.integers(1, 29, rows))]
    postcode = [f"{p}{''.join(s)}" for p, s in zip(rng.integers(1000, 9999, rows), rng.choice(list("ABCDEFGHJKLMNPRSTVWXZ"), (rows, 2)))]
    contract = rng.choice(CONTRACTS, rows, p=[0.5, 0.3, 0.2])
    tenure = rng.integers(1, 72, rows)
    charges = np.round(rng.normal(55 + 12 * period, 18, rows).clip(10, 200), 2)
    calls = rng.poisson(1.5 + 0.5 * period, rows)
    payment = rng.choice(PAYMENTS, rows)
    logit = (
        -1.2
        + 1.4 * (contract == "month-to-month")
        - 0.9 * (contract == "two_year")
        - 0.03 * tenure
        + 0.02 * (charges - 55)
        + (0.35 + 0.3 * period) * calls
        + 0.4 * (payment == "invoice")
        - 0.01 * (age - 42)
    )
    churned = rng.random(rows) < 1 / (1 + np.exp(-logit))
    return pa.table({
        "customer_id": ids,
        "name": [f"{f} {l}" for f, l in zip(first, last)],
        "email": [f"{f.lower()}.{l.lower().replace(' ', '')}{i}@example.com" for f, l, i in zip(first, last, ids)],
        "birth_date": birth,
        "postcode": postcode,
        "contract": contract,
        "tenure_months": tenure,
        "monthly_charges": charges,
        "support_calls": calls,
        "payment_method": payment,
        "churned": churned.astype(int),
    })


def write(directory: Path, rows: int = 5000, seed: int = 7, period: int = 0) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / ("customers.csv" if period == 0 else f"customers_period{period}.csv")
    pacsv.write_csv(generate(rows, seed, period), path)
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--period", type=int, default=0)
    args = parser.parse_args()
    print(write(args.out, args.rows, args.seed, args.period))
