"""One look for every figure: method colours, markers and names, layer names, how files are saved.

LIB and PCA keep the same colour and marker everywhere, so a reader who learns them in figure 1
can read every later figure without its legend.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display here, and none wanted in CI
import matplotlib.pyplot as plt  # noqa: E402

# random: the random-rotation baseline (basis/bases.py: random_basis), grey for "no structure"
METHOD_COLORS = {"lib": "#1f5fa8", "pca": "#d9741c", "neuron": "#5a9a3c", "ngf": "#7b3294",
                 "random": "#6b6b6b"}
METHOD_MARKERS = {"lib": "o", "pca": "s", "neuron": "^", "ngf": "D", "random": "v"}
METHOD_LABELS = {"lib": "LIB", "pca": "PCA", "neuron": "neurons", "ngf": "NGF",
                 "random": "random rotation"}
# The LIB authors' own published numbers (their pipeline on their models): drawn hatched or
# dashed in the method's colour, and always labelled "authors'".
AUTHORS_HATCH = "////"
AUTHORS_LINESTYLE = (0, (4, 2))
# Leiden-cluster colours of the interaction graphs: none of the method colours above, so that a
# cluster never reads as a method (tab10 without its blue, orange, green and purple).
CLUSTER_COLORS = ("#d62728", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#f2c14e", "#222222",
                  "#f7b6d2", "#c49c94", "#dbdb8d")
METHODS = ("lib", "pca")

# Hook-point names (the metric vocabulary) -> what a reader of the paper calls those layers.
LAYER_LABELS = {
    "blocks.0.hook_resid_pre": "before attention",
    "blocks.0.hook_resid_mid": "between attention and MLP",
    "blocks.0.hook_resid_post": "after MLP",
    "output": "logits",
}
LAYER_SHORT = {
    "blocks.0.hook_resid_pre": "pre-attn",
    "blocks.0.hook_resid_mid": "attn-MLP",
    "blocks.0.hook_resid_post": "post-MLP",
    "output": "logits",
}

RC = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "font.size": 10,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "grid.linewidth": 0.6,
    "savefig.bbox": "tight",
    "pdf.fonttype": 42,  # editable text in the PDF
}


def method_label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def method_color(method: str) -> str:
    return METHOD_COLORS.get(method, "#555555")


def method_marker(method: str) -> str:
    return METHOD_MARKERS.get(method, "D")


def seeds_label(method: str, seeds: list) -> str:
    """"LIB (seed 0)" or "LIB (mean of 5 seeds)"."""
    if len(seeds) == 1:
        return f"{method_label(method)} (seed {seeds[0]})"
    return f"{method_label(method)} (mean of {len(seeds)} seeds)"


def layer_label(name: str, short: bool = False) -> str:
    """A layer's reader-facing name; unknown layers keep their hook name."""
    return (LAYER_SHORT if short else LAYER_LABELS).get(name, name)


def transition_label(name: str) -> str:
    """"a->b" as "short(a) -> short(b)"."""
    if name == "total":
        return "total"
    earlier, _, later = name.partition("->")
    return f"{layer_label(earlier, short=True)} \u2192 {layer_label(later, short=True)}"


def figure(*args, **kwargs):
    """``plt.subplots`` under the shared style.

    The style is set process-wide (titles and labels read it when they are drawn, after this
    returns); the figures command is its own process, so nothing else is affected.
    """
    plt.rcParams.update(RC)
    return plt.subplots(*args, **kwargs)


def save(fig, out_dir: Path, stem: str) -> list[Path]:
    """Write ``<stem>.png`` and ``<stem>.pdf`` and close the figure; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
    # no timestamps or versions in the files: regenerating unchanged results changes nothing
    fig.savefig(paths[0], metadata={"Software": None})
    fig.savefig(paths[1], metadata={"CreationDate": None, "Producer": None, "Creator": None})
    plt.close(fig)
    return paths


# --- layer names for every model family (figures 5, 6, 7, 10) ---------------------------------
_HOOK = re.compile(r"blocks\.(\d+)\.hook_resid_(pre|mid|post)$")
_HOOK_PLACE = {"pre": "pre-attn", "mid": "attn-MLP", "post": "post-MLP"}


def layer_names(node_layers: list[str]) -> dict[str, str]:
    """Reader-facing names for one model's node layers, in the model's own terms.

    MLPs store module indices ("0", "2", "4"): they become input / hidden 1 / hidden 2.
    Transformer hook points become "pre-attn", "attn->MLP", "post-MLP" (with "block N" when the
    model has more than one block); ``ln_final`` is "final LN" and ``output`` "logits".
    """
    names = {}
    blocks = {m.group(1) for m in map(_HOOK.match, node_layers) if m}
    hidden = [n for n in node_layers if n.isdigit()]
    for name in node_layers:
        match = _HOOK.match(name)
        if name == "output":
            names[name] = "logits"
        elif name == "ln_final":
            names[name] = "final LN"
        elif match and len(blocks) > 1:
            names[name] = f"block {match.group(1)} {_HOOK_PLACE[match.group(2)]}"
        elif match:
            names[name] = _HOOK_PLACE[match.group(2)]
        elif name.isdigit():
            position = hidden.index(name)
            names[name] = "input" if position == 0 else (
                "hidden" if len(hidden) == 2 else f"hidden {position}")
        else:
            names[name] = name
    return names


def transition_names(node_layers: list[str]) -> dict[str, str]:
    """"a->b" for consecutive node layers (and "total") -> a reader-facing section name.

    Transformer sections are named by what they contain ("attention", "MLP", "unembed", with
    "block N" when there are several blocks; a jump over whole blocks is "block N"); other
    transitions are "name(a) -> name(b)".
    """
    names = layer_names([*node_layers, *(["output"] if "output" not in node_layers else [])])
    order = list(names)
    blocks = {m.group(1) for m in map(_HOOK.match, order) if m}
    labels = {}
    for a, b in zip(order, order[1:]):
        first, second = _HOOK.match(a), _HOOK.match(b)
        prefix = f"block {first.group(1)} " if first and len(blocks) > 1 else ""
        if first and first.group(2) == "pre" and second and second.group(2) == "mid":
            labels[f"{a}->{b}"] = prefix + "attention"
        elif first and first.group(2) == "mid" and (second or b == "ln_final"):
            labels[f"{a}->{b}"] = prefix + "MLP"
        elif first and first.group(2) == "pre" and second and second.group(2) == "pre":
            labels[f"{a}->{b}"] = f"block {first.group(1)} (attention + MLP)"
        elif b == "output" and (first or a == "ln_final"):
            labels[f"{a}->{b}"] = "unembed"
        else:
            labels[f"{a}->{b}"] = f"{names[a]} \u2192 {names[b]}"
    labels["total"] = "total"
    return labels
