"""Figure 7: eigen-spectra per node layer, for every model: Gram D (PCA) and LIB Lambda.

One row per experiment with LIB runs, one panel per rotated node layer. Each spectrum is sorted and
divided by its largest value (D and Lambda have different units; the shape is what counts: how fast
importance falls off), on a log scale, the constant direction left out. One line per seed. Both
come from the LIB graph files: Lambda is the basis's, and D, PCA's spectrum, is the eigenvalues of
the same Gram (``gram_eigenvalues``), so runs whose PCA graph was not kept still show it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from interbasis.figures import data, style

STEM = "fig07_spectra"
FLOOR = 1e-18  # spectra are clipped here: below it float64 eigenvalues are rounding noise


def experiments_with_graphs(results: Path) -> list[str]:
    """Experiments holding complete LIB runs with a stored graph (toy-count runs have none)."""
    runs = data.runs(results)
    if runs.empty or "method" not in runs:
        return []
    lib = runs[runs["method"] == "lib"]
    has_graph = [(Path(path) / "graph_lib.pt").is_file() for path in lib["path"]]
    return sorted(lib[has_graph]["experiment"].unique())


def spectrum(layer, method: str, centred: bool = True) -> np.ndarray:
    """LIB's Lambda ("lib") or the Gram's D ("pca"), sorted, relative, constant left out."""
    if method == "lib":
        values = np.abs(layer.eigenvalues.numpy())
        if layer.has_constant:
            values = values[1:]
    else:
        values = np.abs(layer.gram_eigenvalues.numpy())
        if layer.has_constant and centred:
            # the centred Gram's constant direction has eigenvalue exactly 1 (bases.gram_spectrum)
            ones = np.flatnonzero(values == 1.0)
            values = np.delete(values, ones[:1])
    values = np.sort(values)[::-1]
    return np.clip(values / values[0], FLOOR, None) if len(values) and values[0] > 0 else values


def make(results: Path, out: Path, experiments: list[str] | None = None) -> list[Path]:
    experiments = experiments or experiments_with_graphs(results)
    if not experiments:
        raise data.MissingResults(f"no experiment in {results}/runs has complete LIB and PCA "
                                  f"runs; `{data.SWEEP_COMMAND}` writes the paper's")
    rows = []  # (experiment, [(seed, LIB graph)])
    for experiment in experiments:
        runs = data.method_runs(results, experiment, methods=("lib",))
        runs = runs[[(Path(path) / "graph_lib.pt").is_file() for path in runs["path"]]]
        rows.append((experiment, [(r.seed, data.graph(r.path, "lib")) for r in runs.itertuples()]))
    n_cols = max(sum(layer.has_constant for layer in graphs[0][1].layers) for _, graphs in rows)
    fig, axes = style.figure(len(rows), n_cols, figsize=(3.8 * n_cols, 3.3 * len(rows)),
                             squeeze=False)
    for r, (experiment, graphs) in enumerate(rows):
        names = [layer.name for layer in graphs[0][1].layers if layer.has_constant]
        for c in range(n_cols):
            ax = axes[r, c]
            if c >= len(names):
                ax.axis("off")
                continue
            for method in style.METHODS:
                for n, (_, graph) in enumerate(graphs):
                    values = spectrum(graph.layer(names[c]), method,
                                      graph.settings.get("center", True))
                    symbol = "\u039b" if method == "lib" else "D"
                    ax.plot(np.arange(1, len(values) + 1), values, color=style.method_color(method),
                            lw=1.3, alpha=0.9 if len(graphs) == 1 else 0.5,
                            label=f"{style.method_label(method)} {symbol}" if n == 0 else None)
            ax.set_yscale("log")
            ax.set_ylim(bottom=FLOOR / 3, top=3)
            ax.set_xlim(left=0)
            ax.set_title(f"{experiment}: {style.layer_label(names[c])}", fontsize=9.5)
            ax.set_xlabel("feature (sorted)")
            if c == 0:
                ax.set_ylabel("eigenvalue / largest")
        axes[r, 0].legend(loc="lower left")
    fig.suptitle("Eigen-spectra per layer: Gram eigenvalues D (PCA) and LIB Lambda, each divided "
                 "by its largest\none line per seed; constant direction left out; clipped at "
                 f"{FLOOR:.0e}", fontsize=10.5)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))  # room for the 2-line title
    return style.save(fig, out, STEM)
