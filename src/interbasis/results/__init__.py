"""The results store: one directory per run under ``results/runs/<experiment>/<run_name>/``.

Figures and tables read runs back with ``load_runs`` / ``load_curves`` and nothing else; see
``interbasis.results.store`` for the layout and the rules that keep crashed runs out of it.
"""

from interbasis.results.meta import collect_meta, utc_now
from interbasis.results.runs_table import load_runs
from interbasis.results.store import (
    DEFAULT_IGNORED_OVERRIDES,
    RunDirectory,
    atomic_write_text,
    curves_frame,
    load_curves,
    run_name_from_overrides,
    validate_summary,
)

__all__ = [
    "DEFAULT_IGNORED_OVERRIDES", "RunDirectory", "atomic_write_text", "collect_meta",
    "curves_frame", "load_curves", "load_runs", "run_name_from_overrides", "utc_now",
    "validate_summary",
]
