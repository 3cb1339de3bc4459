"""How many parameters the three internal sources of degeneracy say are free (arXiv 2405.10927).

The counting rule (docs/llc.md, "Counting free parameters"), from the paper's section 3 argument
for a weight matrix W from layer l (D_l directions, the constant included) to layer m (D_m):

- source 1, linearly dependent activations: if the activations at l span r_l < D_l directions, W
  acting on the other D_l - r_l does nothing on the data: only a fraction r_l / D_l of W counts;
- source 2, linearly dependent gradients: if the gradients of the output at m span r'_m < D_m
  directions, changes of W in the other directions do not change the output to first order: a
  further fraction r'_m / D_m;
- so of W's D_l x D_m entries r_l x r'_m are effective and the rest free. Every parameter of
  the section between two consecutive node layers (attention, MLP, LayerNorm, embeddings) is
  counted with that section's fraction (r_l / D_l) (r'_m / D_m): exact for one linear map, a
  uniform-density reading of it for a nonlinear block;
- source 3, ReLUs that fire together: k neurons with one firing pattern are one linear map on
  the data, so mixing them by a k x k matrix (undone on their outgoing weights) is free beyond
  the k rescalings every ReLU has: k (k - 1) directions. From the stored ratio s = patterns /
  neurons alone the group sizes are unknown; N (1 / s - 1), the value for equal groups, is the
  least the sum can be, and is what is counted.

Free directions are counted once per section and added over sections and ReLU layers; a tied
weight (the polysemanticity toy's W, used twice) is counted on the untied form and given the
mean free fraction of its uses: free x (tied count / untied count).

    sizes = section_sizes(model, inputs, node_layers)    # model/params_into/<layer>, model/dim/..
    free_parameters(sizes, ranks, n_params=57_660)       # {"free/total": ..., "free/effective"..}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

OUTPUT = "output"
INTO = "model/params_into/"  # parameters of the section that ends at <layer>
DIM = "model/dim/"  # D: directions at <layer>, the constant included (not for the output)


def section_sizes(model: nn.Module, inputs: Tensor, node_layers: list[str],
                  relu_layers: Sequence[str] = ()) -> dict[str, int]:
    """Parameters per section between consecutive node layers, and each node layer's D.

    A node layer is the input of the module of that name (``output``: the model's output), as in
    the basis. A parameter belongs to the section whose end node layer comes next after its
    module runs on one forward pass of ``inputs[:2]``; a parameter used twice counts at its
    first use. ``relu_layers`` (modules whose input is a ReLU's output) get ``model/dim/`` too.
    """
    modules = dict(model.named_modules())
    names = [name for name in node_layers if name != OUTPUT]
    relu_layers = [name for name in relu_layers if name != OUTPUT]  # its D is the output's
    missing = [name for name in [*names, *relu_layers] if name not in modules]
    if missing:
        raise ValueError(f"node layers {missing} are not modules of the model")
    order: list[tuple[str, Any]] = []  # ("node", name) or ("params", [parameters])
    dims: dict[str, int] = {}
    hooks = []

    def pre_hook(name: str):
        def hook(module: nn.Module, args) -> None:
            if name in names or name in relu_layers:
                dims.setdefault(name, int(args[0].shape[-1]) + 1)
            if name in names:
                order.append(("node", name))
            own = list(module.parameters(recurse=False))
            if own:
                order.append(("params", own))
        return hook

    for name, module in modules.items():
        if name in names or name in relu_layers or any(True for _ in
                                                       module.parameters(recurse=False)):
            hooks.append(module.register_forward_pre_hook(pre_hook(name)))
    try:
        with torch.no_grad():
            out = model(inputs[:2])
    finally:
        for hook in hooks:
            hook.remove()
    sizes: dict[str, int] = {f"{DIM}{name}": dim for name, dim in dims.items()}
    sizes[f"{DIM}{OUTPUT}"] = int(out.shape[-1])
    seen: set[int] = set()
    pending: list[int] = []
    for kind, item in order:
        if kind == "node":
            sizes[f"{INTO}{item}"] = sizes.get(f"{INTO}{item}", 0) + sum(pending)
            pending = []
        else:
            for parameter in item:
                if id(parameter) not in seen and parameter.requires_grad:
                    seen.add(id(parameter))
                    pending.append(parameter.numel())
    sizes[f"{INTO}{OUTPUT}"] = sum(pending)
    return sizes


def free_parameters(sizes: Mapping[str, float], ranks: Mapping[str, float],
                    n_params: int | None = None) -> dict[str, float]:
    """The counting rule of the module docstring.

    ``sizes``: :func:`section_sizes`' keys; ``ranks``: ``rank/gram/<layer>``,
    ``rank/jacobian/<layer>`` (any cut: pass the one you mean) and
    ``degeneracy/relu_sync/<layer>``. ``n_params``: the model's own count where it ties weights
    the sections count twice. Returns ``free/activations``, ``free/jacobians``, ``free/relu``,
    ``free/total`` and ``free/effective`` (d - free: the count an LLC should stay below twice).
    """
    into = [(key.removeprefix(INTO), int(value)) for key, value in sizes.items()
            if key.startswith(INTO)]
    layers = [name for name, _ in into]  # in forward order, the output last
    if not layers or layers[-1] != OUTPUT:
        raise ValueError(f"sizes has no {INTO}{OUTPUT} entry: not from section_sizes")
    free_act = free_jac = 0.0
    previous = None
    for layer, count in into:
        f_in = _fraction(ranks, f"rank/gram/{previous}", sizes, previous) if previous else 1.0
        f_out = _fraction(ranks, f"rank/jacobian/{layer}", sizes, layer)
        free_act += count * (1 - f_in)
        free_jac += count * f_in * (1 - f_out)
        previous = layer
    free_relu = 0.0
    for key, sync in ranks.items():
        name = key.removeprefix("degeneracy/relu_sync/")
        if key.startswith("degeneracy/relu_sync/") and sync and f"{DIM}{name}" in sizes:
            neurons = sizes[f"{DIM}{name}"] - (0 if name == OUTPUT else 1)
            free_relu += neurons * max(0.0, 1 / float(sync) - 1)
    counted = sum(count for _, count in into)
    total = free_act + free_jac + free_relu
    d = counted if n_params is None else int(n_params)
    if counted and d != counted:  # a tied weight: the mean free fraction of its uses
        free_act, free_jac, free_relu, total = (value * d / counted for value in
                                                (free_act, free_jac, free_relu, total))
    return {"free/activations": free_act, "free/jacobians": free_jac, "free/relu": free_relu,
            "free/total": total, "free/effective": d - total}


def _fraction(ranks: Mapping[str, float], key: str, sizes: Mapping[str, float],
              layer: str) -> float:
    """r / D at ``layer`` (1 where the rank or D is not known: nothing counted free)."""
    dim = sizes.get(f"{DIM}{layer}")
    rank = ranks.get(key)
    if dim is None or rank is None or rank != rank:  # NaN: not measured at this layer
        return 1.0
    return min(1.0, float(rank) / float(dim))


def sizes_of_run(run_path, summary: Mapping[str, float]) -> dict[str, int]:
    """The section sizes a run stored (``analysis.llc`` runs do), else, for a modular-addition
    or polysemanticity-toy run stored before they were, rebuilt from its config (they depend on
    the architecture only); empty when neither is possible."""
    from pathlib import Path

    import yaml

    stored = {k: int(v) for k, v in summary.items()
              if (k.startswith(INTO) or k.startswith(DIM)) and v == v}
    if stored:
        return stored
    config = yaml.safe_load((Path(run_path) / "config.yaml").read_text(encoding="utf-8"))
    m = config.get("model", {})
    if m.get("family") == "poly_toy" and {"n", "m", "node_layers"} <= set(m):
        from interbasis.models.poly_toy import as_sequential
        return section_sizes(as_sequential(torch.zeros(m["n"], m["m"])), torch.eye(m["n"]),
                             list(m["node_layers"]), ["output"])
    if m.get("family") != "modadd" or not {"d_model", "n_heads", "d_head", "d_mlp"} <= set(m):
        return {}
    from interbasis.models.modadd import ModAddTransformer, ModAddTransformerConfig
    from interbasis.training.modadd import RELU_LAYER

    model = ModAddTransformer(ModAddTransformerConfig(
        d_vocab=config["data"]["p"] + 1, d_model=m["d_model"], n_heads=m["n_heads"],
        d_head=m["d_head"], d_mlp=m["d_mlp"]))
    tokens = torch.zeros(2, 3, dtype=torch.long)
    return section_sizes(model, tokens, list(m["node_layers"]), [RELU_LAYER])
