"""A short plain-text report of one run's headline metrics, printed when the run ends.

    print(format_run_summary(summary))

Per node layer: rank/basis, lambda_99 and k_required@0.001; per transition: edges_99 and
edges_required@0.001 (with the possible edges); then the total edges required and modularity.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

LAYER_COLUMNS = ("rank/basis", "sparsity/lambda_99", "ablation/k_required@0.001")
TRANSITION_COLUMNS = ("sparsity/edges_99", "ablation/edges_required@0.001")


def format_run_summary(summary: Mapping[str, Any]) -> str:
    """The headline metrics of a flat run summary as an aligned table."""
    layers = _suffixes(summary, "rank/basis/")
    transitions = [name for name in _suffixes(summary, "ablation/edges_required@0.001/")
                   if name != "total"]
    title = (f"{str(summary.get('method', '?')).upper()} on {summary.get('model', '?')}, "
             f"seed {summary.get('seed', '?')}")
    lines = [title]
    lines += _table("node layer", layers, LAYER_COLUMNS, summary)
    lines += _table("transition", transitions, TRANSITION_COLUMNS, summary)
    for key in ("ablation/edges_required@0.001/total", "modularity/q"):
        if key in summary:
            lines.append(f"{key}: {_show(summary[key])}")
    return "\n".join(lines)


def short_metric(metric: str) -> str:
    """A metric's name without its ``sparsity/`` or ``ablation/`` group, for column headers."""
    return metric.removeprefix("sparsity/").removeprefix("ablation/")


def pipe_table(header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown pipe table (no trailing newline); cells are shown with ``str``."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def _suffixes(summary: Mapping[str, Any], prefix: str) -> list[str]:
    return [key.removeprefix(prefix) for key in summary if key.startswith(prefix)]


def _table(header: str, rows: list[str], columns: tuple[str, ...],
           summary: Mapping[str, Any]) -> list[str]:
    if not rows:
        return []
    width = max(len(header), *(len(row) for row in rows))
    names = [short_metric(column) for column in columns]
    lines = [f"  {header:<{width}}  " + "  ".join(f"{name:>18}" for name in names)]
    for row in rows:
        cells = [_show(summary.get(f"{column}/{row}")) for column in columns]
        lines.append(f"  {row:<{width}}  " + "  ".join(f"{cell:>18}" for cell in cells))
    return lines


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def spread(values: pd.Series | None) -> str:
    """``mean [min-max]`` of the numbers in ``values`` (``-`` when there are none)."""
    if values is None:
        return "-"
    values = pd.to_numeric(values, errors="coerce").dropna()
    if values.empty:
        return "-"
    low, high, mean = values.min(), values.max(), values.mean()
    if low == high:
        return number(mean)
    return f"{number(mean)} [{number(low)}-{number(high)}]"


def number(value: float) -> str:
    """An integer as itself, else one decimal (three significant digits below 1)."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.1f}" if abs(value) >= 1 else f"{value:.3g}"
