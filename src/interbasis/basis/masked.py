"""Fast edge-ablated evaluation of sections that read their input through linear maps
(docs/method.md §6.2).

Edge ablation recomputes every output feature i of a transition from its kept input features only,
g_i(f * m_i) with m_i the i-th row of the edge mask. Run literally (``vmap`` over i) that is r_out
full section evaluations per bisection step. Most sections touch their input only through linear
maps: a Linear layer, a residual skip, the Q/K/V projections of attention. Written as

    section(x) = x[:, skip_positions] @ skip + core(x @ in_weight) @ out_weight,

the masked input only enters through (f * m_i) C+ in_weight = f[..., K_i] (C+ in_weight)[K_i],
whose cost is proportional to the |K_i| kept edges of row i, and through the skip term, which is
one matmul for all i. Only ``core`` (the activation, or softmax mixing) runs per output feature,
and its output is reduced to feature i at once through ``out_weight @ C_next[:, i]``. The bisection
evaluates mostly small edge counts, so a whole edge ablation costs about one dense evaluation.

A model offers this form with ``section_input_map(name_in, name_out) -> InputMap | None``;
sections with a linearized fast path (``linearize_section``, basis/linearized.py) get it
automatically. Everything else takes the generic ``vmap`` path, against which this one is tested.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from jaxtyping import Bool, Float
from torch import Tensor, nn

from interbasis.basis.linearized import LinearizedSection
from interbasis.basis.stats import as_positions


@dataclass
class InputMap:
    """section(x) = x[:, skip_positions] @ skip + core(x @ in_weight) @ out_weight.

    Inputs are (n, P_in, d_in) and outputs (n, P_out, d_out); ``core`` maps (n, P_in, k) to
    (n, P_out, m). ``core=None`` means the section is the skip term alone (a linear section).
    """

    in_weight: Tensor | None  # (d_in, k)
    core: Callable[[Tensor], Tensor] | None
    out_weight: Tensor | None  # (m, d_out)
    skip: Tensor | None = None  # (d_in, d_out)
    # input positions that the skip carries to the output positions (default: all, position-wise)
    skip_positions: slice = field(default_factory=lambda: slice(None))

    @classmethod
    def from_linearized(cls, section: LinearizedSection) -> InputMap | None:
        """The input map of ``skip x + out_map act(in_map x)``; None without its activation."""
        skip = None if section.skip is None else section.skip.T
        if section.in_map.shape[0] == 0:  # no hidden units: a linear section
            return cls(None, None, None, skip=skip)
        if section.activation is None:
            return None
        return cls(section.in_map.T, section.activation, section.out_map.T, skip=skip)


def section_input_map(model: nn.Module, name_in: str, name_out: str) -> InputMap | None:
    """The model's input map of this section, from ``section_input_map`` or its linearization."""
    offer = getattr(model, "section_input_map", None)
    if offer is not None:
        found = offer(name_in, name_out)
        if found is not None:
            return found
    linearize = getattr(model, "linearize_section", None)
    linearized = None if linearize is None else linearize(name_in, name_out)
    return None if linearized is None else InputMap.from_linearized(linearized)


def masked_next_features(
    input_map: InputMap,
    features: Float[Tensor, "n p_in r_in"],
    mask: Bool[Tensor, "r_out r_in"],
    C_pinv: Float[Tensor, "r_in d_in"],
    C_next: Float[Tensor, "d_out r_out"],
) -> Float[Tensor, "n p_out r_out"]:
    """Next-layer features, each computed from its kept input features only (ablated ones = 0)."""
    mask = mask.to(torch.bool)
    total = None
    if input_map.skip is not None:
        # Feature i of the skip term is sum_j m_ij f_j L_ji: one matmul with the masked L.
        linear = C_pinv @ input_map.skip @ C_next  # (r_in, r_out)
        total = features[:, input_map.skip_positions] @ (linear * mask.T.to(linear.dtype))
    if input_map.core is None:
        if total is None:
            raise ValueError("an InputMap needs a core, a skip term, or both")
        return total
    if input_map.in_weight is None or input_map.out_weight is None:
        raise ValueError("an InputMap with a core needs its in_weight and out_weight")
    projected = C_pinv @ input_map.in_weight  # (r_in, k)
    readout = input_map.out_weight @ C_next  # (m, r_out)
    columns = []
    for i in range(mask.shape[0]):
        kept = mask[i].nonzero().squeeze(1)
        z = features.index_select(-1, kept) @ projected.index_select(0, kept)
        columns.append(as_positions(input_map.core(z)) @ readout[:, i])
    core_part = torch.stack(columns, dim=-1)
    return core_part if total is None else total + core_part
