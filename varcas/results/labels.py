"""How a comparison row reads, in words and figures: the same on the terminal (optimize) and in
the report, so both say the same thing in the same spelling."""
from __future__ import annotations


def cell(value, change) -> str:
    """'1,234 (+12%)': the value and its change against the baseline."""
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return text if change is None or abs(change) < 0.0005 else f"{text} ({change:+.0%})"


def verdict_label(row: dict) -> str:
    """A row's verdict in a word or two: failed (with why), OVERLOADED, steady, no steady state."""
    if row["status"] == "failed":
        return f"failed: {row['reason']}"
    if "metrics" not in row:
        return row["status"]
    if row["overloaded"]:
        return "OVERLOADED"
    return "steady" if row["steady"] else "no steady state"

