"""Every paper figure (docs/experiments.md, "Figures to regenerate"): its module, inputs and
command.

A figure with a ``module`` is drawn by ``<module>.make(results, out)``; one without is listed so
that the figures command says in one line which results it waits for and what will produce them.
``paper_figures/README.md`` is this table in prose.
"""

from __future__ import annotations

from dataclasses import dataclass

from interbasis.figures.data import BACKFILL_COMMAND, PAPER_EXPERIMENT, SWEEP_COMMAND

RUNS = f"results/runs/{PAPER_EXPERIMENT}/method={{lib,pca}},seed=*/"
BACKFILL = BACKFILL_COMMAND.format(experiment=PAPER_EXPERIMENT)


@dataclass(frozen=True)
class FigureSpec:
    number: int
    title: str
    module: str | None  # under interbasis.figures; None: no module yet
    results: str  # the files it reads
    command: str  # what writes those files


FIGURES = (
    FigureSpec(1, "modular addition: accuracy vs kept features (3 layers, LIB vs PCA)",
               "fig01_node_ablation", RUNS + " curves.csv, summary.json", SWEEP_COMMAND),
    FigureSpec(2, "modular addition: edges required per transition and in total",
               "fig02_edges_required", RUNS + " summary.json", SWEEP_COMMAND),
    FigureSpec(3, "modular addition: the LIB interaction graph",
               "fig03_lib_graph", RUNS.replace("{lib,pca}", "lib")
               + " graph_lib.pt, modularity.json, fourier.csv",
               f"{SWEEP_COMMAND} (older runs: {BACKFILL})"),
    FigureSpec(4, "modular addition: Fourier purity of LIB vs PCA features",
               "fig04_fourier_purity", RUNS + " fourier.csv, graph_*.pt",
               f"{SWEEP_COMMAND} (older runs: {BACKFILL})"),
    FigureSpec(5, "vision MLP: LIB graph, edge sparsity vs PCA, class separation",
               "fig05_vision", "results/runs/{fashion_mlp,cifar_paper}/method={lib,pca},seed=*/ "
               "summary.json, edge_weight.csv, class_means.csv, class_separation.csv, graph_lib.pt,"
               " modularity.json", "python -m interbasis.run -m sweep=paper_fashion"),
    FigureSpec(6, "language models: CE-loss increase vs edges kept", "fig06_lm_edges",
               "results/runs/tiny_gpt/method={lib,pca},seed=*/ curves.csv, summary.json",
               "python -m interbasis.run -m experiment=tiny_gpt method=lib,pca seed=0,1,2"),
    FigureSpec(7, "eigen-spectra per layer (Gram D and LIB Lambda), every model",
               "fig07_spectra", "results/runs/*/method={lib,pca},seed=*/ graph_*.pt",
               SWEEP_COMMAND),
    FigureSpec(8, "degeneracy: the three ranks per layer, every model; modadd over training; "
               "the LLC", "fig08_degeneracy", "results/runs/*/method=lib,*/ summary.json "
               "(degeneracy/relu_sync/*), graph_lib.pt; results/runs/modadd_degeneracy/*/ "
               "degeneracy_over_training.csv (with degeneracy/llc); summaries with degeneracy/llc",
               f"{SWEEP_COMMAND} (every family's runs), "
               "python -m interbasis.run experiment=modadd_degeneracy analysis.llc=true and "
               "python -m interbasis.run -m experiment=modadd_paper experiment_name=modadd_llc "
               "seed=0,1,2,3,4 analysis.llc=true analysis.graph=false"),
    FigureSpec(9, "incidental polysemanticity: polysemantic neurons vs m",
               "fig09_polysemanticity", "results/runs/poly_paper/*/ summary.json, config.yaml, "
               "toy_training.csv", "python -m interbasis.run -m sweep=paper_poly"),
    FigureSpec(10, "LIB / PCA ratios across architectures (table and chart)",
               "fig10_cross_architecture", "results/runs/*/*/summary.json of every experiment "
               "with LIB and PCA runs", SWEEP_COMMAND + " (and each model family's sweep)"),
)


# The experiments each figure draws by default: the paper's, whose runs are committed under
# results/runs. A user's own runs (``default``, ``debug``, a new experiment_name) never enter a
# committed figure unless asked for with ``--experiments``.
MODADD = (PAPER_EXPERIMENT,)
# figures 1-3 set our models beside the LIB authors' models run through our pipeline
WITH_AUTHORS = (PAPER_EXPERIMENT, "modadd_authors")
EXPERIMENTS: dict[int, tuple[str, ...]] = {
    1: WITH_AUTHORS, 2: WITH_AUTHORS, 3: WITH_AUTHORS, 4: MODADD,
    5: ("fashion_mlp", "cifar_paper"),
    6: ("tiny_gpt", "smollm2_sections", "smollm2_blocks"),
    7: ("fashion_cnn", "fashion_mlp", "modadd_degeneracy", "modadd_paper", "poly_toy",
        "smollm2_135m", "smollm2_sections", "tiny_gpt"),
    8: ("fashion_cnn", "fashion_llc", "fashion_mlp", "llc_calibration_cnn",
        "llc_calibration_fashion", "llc_calibration_gpt", "llc_calibration_poly",
        "modadd_degeneracy", "modadd_degeneracy_paper", "modadd_llc", "modadd_paper", "poly_toy",
        "tiny_gpt"),
    9: ("poly_paper",),
    10: ("fashion_cnn", "fashion_mlp", "modadd_paper", "poly_toy", "smollm2_135m",
         "smollm2_blocks", "smollm2_sections", "tiny_gpt"),
}


def by_number(number: int) -> FigureSpec:
    for spec in FIGURES:
        if spec.number == number:
            return spec
    raise KeyError(f"no figure {number}; figures are {[s.number for s in FIGURES]}")
