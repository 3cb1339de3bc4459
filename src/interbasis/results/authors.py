"""The LIB authors' published modular-addition numbers, beside ours.

``python -m interbasis.results compare modadd_authors --reference authors`` prints, per node layer
(basis size, features required within 0.001 accuracy) and per transition (edges required within
0.001), our pipeline's numbers on the experiment's runs beside the authors' own, for LIB and PCA,
``mean [min-max]`` over seeds; then the same for our own models (``--ours``, default
modadd_paper). The reference folder is ``paths.rib_repo`` of the composed config (conf/paths;
``INTERBASIS_RIB`` moves it) or ``--reference-dir``; it holds ``authors_edges_required.csv`` and
``authors_node_ablation.csv`` (their ``rib`` basis is our LIB, their centred ``svd`` our PCA).
``python -m interbasis.results authors-import`` copies the two files into the results store
(``results/reference/authors_modadd/``, with their source and licence), where the figures read them:
figures draw from committed results only.

Their node-layer names map to our hook points: ln1.0 -> before attention (resid_pre), ln2.0 ->
between attention and MLP (resid_mid), unembed -> after the MLP (resid_post); their row for a
layer is the transition out of it. Their basis size is the first (largest) ``n_remaining`` of
their node-ablation schedule, and their features required are our :func:`k_required` on their
curve, whose schedule is exponential (steps of 2-4 features above 16): a resolution, not an error.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from interbasis.basis.types import NodeAblationCurve
from interbasis.metrics.ablation import k_required
from interbasis.results.report import number, spread

REFERENCE_DIR = "reference/authors_modadd"  # under the results store: the committed copy
EDGES_FILE = "authors_edges_required.csv"
NODES_FILE = "authors_node_ablation.csv"
DELTA = 0.001
# their node layer -> ours, and the transition out of it
LAYERS = {"ln1.0": "blocks.0.hook_resid_pre", "ln2.0": "blocks.0.hook_resid_mid",
          "unembed": "blocks.0.hook_resid_post"}
NEXT = {"blocks.0.hook_resid_pre": "blocks.0.hook_resid_mid",
        "blocks.0.hook_resid_mid": "blocks.0.hook_resid_post",
        "blocks.0.hook_resid_post": "output"}
SHORT = {"blocks.0.hook_resid_pre": "resid_pre", "blocks.0.hook_resid_mid": "resid_mid",
         "blocks.0.hook_resid_post": "resid_post", "output": "output"}
METHODS = ("lib", "pca")


class AuthorsReferenceError(ValueError):
    """The authors' numbers are not where the reference folder says."""


def transition_name(layer: str) -> str:
    """Our summary's name of the transition out of node layer ``layer``."""
    return f"{layer}->{NEXT[layer]}"


def load_reference(folder: str | Path) -> pd.DataFrame:
    """One row per (method, seed, layer) with the authors' ``rank``, ``k_required`` (within
    0.001 of their unablated accuracy) and ``edges_required``; ``layer`` in our names."""
    folder = Path(folder)
    missing = [name for name in (EDGES_FILE, NODES_FILE) if not (folder / name).is_file()]
    if missing:
        raise AuthorsReferenceError(
            f"no {' or '.join(missing)} in {folder}: point --reference-dir (or paths.rib_repo / "
            "INTERBASIS_RIB) at the folder of the authors' published numbers")
    edges = pd.read_csv(folder / EDGES_FILE)
    nodes = pd.read_csv(folder / NODES_FILE)
    rows = []
    for (method, seed, layer), curve in nodes.groupby(["method", "seed", "node_layer"]):
        base = edges[(edges.method == method) & (edges.seed == seed)
                     & (edges.node_layer == layer)]
        base_score = float(base.unablated_accuracy.iloc[0]) if len(base) else curve.accuracy.max()
        ks = [int(k) for k in curve.n_remaining]
        required = k_required(NodeAblationCurve(LAYERS[layer], ks, list(curve.accuracy),
                                                base_score), DELTA)
        rows.append({"method": method, "seed": int(seed), "layer": LAYERS[layer],
                     "rank": max(ks), "k_required": required,
                     "edges_required": (int(base.n_edges_required.iloc[0]) if len(base)
                                        else float("nan"))})
    return pd.DataFrame(rows)


def side_by_side(runs: pd.DataFrame, reference: pd.DataFrame, paired: bool = False
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(node-layer table, transition table): ours and theirs per method, mean [min-max].

    ``paired``: the runs are of the authors' own models, so their numbers are taken over the
    seeds we have runs of (per method), seed for seed; else over all their seeds."""
    if paired:
        reference = pd.concat([reference[(reference.method == m)
                                         & reference.seed.isin(runs.loc[runs.method == m, "seed"])]
                               for m in METHODS], ignore_index=True)
    layers = list(LAYERS.values())
    node_rows, edge_rows = [], []
    for layer in layers:
        node_row: dict[str, str] = {"node layer": SHORT[layer]}
        edge_row: dict[str, str] = {"transition": f"{SHORT[layer]}->{SHORT[NEXT[layer]]}"}
        for method in METHODS:
            ours = runs[runs["method"] == method]
            theirs = reference[(reference.method == method) & (reference.layer == layer)]
            label = method.upper()
            node_row[f"rank {label} ours"] = spread(ours.get(f"rank/basis/{layer}"))
            node_row[f"rank {label} theirs"] = spread(theirs["rank"])
            node_row[f"k_req {label} ours"] = spread(
                ours.get(f"ablation/k_required@{DELTA}/{layer}"))
            node_row[f"k_req {label} theirs"] = spread(theirs["k_required"])
            edge_row[f"{label} ours"] = spread(
                ours.get(f"ablation/edges_required@{DELTA}/{transition_name(layer)}"))
            edge_row[f"{label} theirs"] = spread(theirs["edges_required"])
        node_rows.append(node_row)
        edge_rows.append(edge_row)
    total: dict[str, str] = {"transition": "total"}
    for method in METHODS:
        ours = runs[runs["method"] == method]
        theirs = reference[reference.method == method].groupby("seed")["edges_required"].sum()
        total[f"{method.upper()} ours"] = spread(ours.get(f"ablation/edges_required@{DELTA}/total"))
        total[f"{method.upper()} theirs"] = spread(theirs)
    edge_rows.append(total)
    return pd.DataFrame(node_rows), pd.DataFrame(edge_rows)


def per_seed(runs: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Edges required per method and seed, ``ours / theirs`` per transition (the same model)."""
    rows = []
    for run in runs[runs["method"].isin(METHODS)].sort_values(["method", "seed"]).itertuples():
        summary = runs.loc[run.Index]
        theirs = reference[(reference.method == run.method) & (reference.seed == run.seed)]
        row = {"method": run.method.upper(), "seed": int(run.seed)}
        for layer in LAYERS.values():
            ours = summary.get(f"ablation/edges_required@{DELTA}/{transition_name(layer)}")
            published = theirs.loc[theirs.layer == layer, "edges_required"]
            row[f"{SHORT[layer]}->{SHORT[NEXT[layer]]}"] = (
                f"{number(ours) if pd.notna(ours) else '-'} / "
                f"{number(published.iloc[0]) if len(published) else '-'}")
        rows.append(row)
    return pd.DataFrame(rows)


def default_reference_dir() -> Path:
    """``paths.rib_repo`` of the composed run config (conf/paths/default.yaml)."""
    from hydra import compose, initialize_config_dir

    from interbasis.run import CONFIG_DIR  # registers the interbasis_root resolver

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="config")
    return Path(cfg.paths.rib_repo)


def cli(args, all_runs: pd.DataFrame, runs: pd.DataFrame) -> int:
    """The ``--reference authors`` part of ``results compare``: the experiment's runs and those of
    ``args.ours``, each beside the authors' numbers."""
    from interbasis.results.report import pipe_table

    folder = args.reference_dir or default_reference_dir()
    try:
        reference = load_reference(folder)
    except AuthorsReferenceError as error:
        print(f"error: {error}")
        return 1
    shown = [(args.experiment, runs)]
    if args.ours != args.experiment:
        shown.append((args.ours, all_runs[all_runs["experiment"] == args.ours]))
    for experiment, chosen in shown:
        if chosen.empty:
            print(f"\n{experiment}: no complete runs")
            continue
        seeds = chosen.groupby("method")["seed"].nunique()
        print(f"\n{experiment} (ours: " + ", ".join(f"{m.upper()} {n}" for m, n in seeds.items())
              + f" seeds) beside the authors' published numbers ({folder}; theirs: 5 seeds), "
              f"within {DELTA} accuracy")
        paired = experiment == args.experiment and args.experiment != args.ours
        tables = list(side_by_side(chosen, reference, paired=paired))
        if paired:  # the authors' own models: seed for seed, ours / theirs
            tables.append(per_seed(chosen, reference))
            print("(theirs over the same seeds; last table: edges required, ours / theirs)")
        for table in tables:
            print()
            print(pipe_table(table.columns, table.itertuples(index=False)) if args.markdown
                  else table.to_string(index=False))
    return 0


def import_reference(source: str | Path, results: str | Path) -> Path:
    """Copy the authors' two CSVs into ``<results>/reference/authors_modadd/`` with a README
    naming their source and licence; returns that folder."""
    source = Path(source)
    load_reference(source)  # refuse a folder without them (one line)
    dest = Path(results) / REFERENCE_DIR
    dest.mkdir(parents=True, exist_ok=True)
    for name in (EDGES_FILE, NODES_FILE):
        (dest / name).write_bytes((source / name).read_bytes())
    (dest / "README.md").write_text(
        "# The LIB authors' published modular-addition numbers\n\n"
        "Copied by `python -m interbasis.results authors-import` from the authors' public "
        "repository\nApolloResearch/rib (MIT licence, Copyright (c) 2024 ApolloResearch), "
        "`rib_scripts/rib_build/\nsample_configs_modadd/out/*_ablation_results.json`, as CSV: "
        f"`{EDGES_FILE}` (edges required\nwithin 0.001 test accuracy, per method, seed and node "
        f"layer; a layer's row is the transition out\nof it) and `{NODES_FILE}` (test accuracy "
        "with n_remaining features kept, their exponential\nschedule). `lib` is their `rib` "
        "(jacobian) basis, `pca` their centred `svd` basis; node layers\nln1.0 / ln2.0 / unembed "
        "are our resid_pre / resid_mid / resid_post. Figures 1 and 2 read them here.\n",
        encoding="utf-8")
    return dest


def register(subparsers) -> None:
    """Add ``authors-import`` to ``python -m interbasis.results``."""
    parser = subparsers.add_parser("authors-import", help="copy the LIB authors' published "
                                   "modadd numbers into results/reference/ (figures read them)")
    parser.add_argument("--reference-dir", type=Path,
                        help="folder of the authors' CSVs (default: paths.rib_repo)")
    parser.add_argument("--results", type=Path, help="results store (default: <repo>/results)")
    parser.set_defaults(run=_import_cli)


def _import_cli(args) -> int:
    from interbasis.results.aggregate import default_results_root

    try:
        dest = import_reference(args.reference_dir or default_reference_dir(),
                                args.results or default_results_root())
    except AuthorsReferenceError as error:
        print(f"error: {error}")
        return 1
    print(f"wrote {dest}")
    return 0
