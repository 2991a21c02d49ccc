"""Helpers for the etl example: read orders from a CSV file, then convert and filter one order.

The module sits beside workflow.yaml, which is how `function: etl_tasks:extract` finds it.
Both functions only read; the workflow's `load` step writes the summary into the workspace.
"""

from __future__ import annotations

import csv

# Fixed rates, so that the example needs no network: units of the target currency per unit.
RATES = {
    "EUR": {"EUR": 1.0, "USD": 0.92, "GBP": 1.17},
    "USD": {"EUR": 1.09, "USD": 1.0, "GBP": 1.27},
    "GBP": {"EUR": 0.85, "USD": 0.79, "GBP": 1.0},
}


def extract(path: str, ctx) -> list[dict]:
    """Return the orders in `path` (relative to the workflow's folder) as a list of rows."""
    with (ctx.workflow_dir / path).open(newline="", encoding="utf-8") as stream:
        rows = [
            {"order_id": r["order_id"], "customer": r["customer"], "country": r["country"],
             "amount": float(r["amount"]), "currency": r["currency"]}
            for r in csv.DictReader(stream)
        ]
    ctx.logger.info("read {} orders from {}", len(rows), path)
    return rows


def transform(row: dict, currency: str, min_amount: int) -> dict:
    """Convert one order to `currency` and say whether it reaches `min_amount`."""
    try:
        rate = RATES[currency][row["currency"]]
    except KeyError:
        raise ValueError(f"order {row['order_id']}: no rate from {row['currency']} to {currency}") from None
    amount = round(row["amount"] * rate, 2)
    return {"order_id": row["order_id"], "customer": row["customer"], "country": row["country"],
            "amount": amount, "currency": currency, "kept": amount >= min_amount}
