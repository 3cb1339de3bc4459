"""Naive gradient flow (NGF), the LIB paper's appendix variant of the basis (``method="ngf"``).

LIB builds the basis of node layer l from the Jacobian of the next section only, l -> l+1, in the
basis of l+1 (which is why it is computed from the last layer backwards). NGF instead uses the
Jacobian of the whole remaining network, l -> the final node layer, in the final layer's basis:
M'_l = E[J_{l->L}^T C_L C_L^T J_{l->L}]. The basis formula given M' is LIB's
(:func:`interbasis.basis.bases.lib_basis`), and the edges are LIB's too: between consecutive
layers, in the bases each layer got. So the last two layers' bases are exactly LIB's (for l = L-1
the two sections coincide) and earlier ones differ.

The authors' code calls this ``naive_gradient_flow: true`` (ApolloResearch/rib, e.g.
``modular_arithmetic_ngf_seed0.yaml``). It needs the section l -> L to be runnable as one
function, which :func:`interbasis.basis.sections.section` gives for every model whose node layers
are module inputs crossed once per forward pass: tested on MLPs (vision, the toy), the modular-
addition transformer and the tiny GPT (tests/test_ngf.py); pretrained LMs (hf_lm) take the same
code path but are untested. A multi-section Jacobian never has a model's
one-section fast path (``linearize_section``), so NGF sections other than the last run on the
generic autograd path.

:func:`jacobian_target` is the one hook ``build_graph`` calls: which node layer, and in which
basis, the Jacobian that defines layer l's basis ends.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from interbasis.basis.bases import Basis

NGF = "ngf"


def jacobian_target(method: str, node_layers: Sequence[str], index: int,
                    layer_bases: Sequence[Basis | None]) -> tuple[str, Tensor]:
    """(name, C) of the layer where the Jacobian that defines layer ``index``'s basis ends.

    ``layer_bases`` holds the bases found so far (every layer after ``index``). LIB (and every
    other method): the next layer. NGF: the final layer.
    """
    target = len(node_layers) - 1 if method == NGF else index + 1
    basis = layer_bases[target]
    if basis is None:
        raise ValueError(f"the basis of node layer {node_layers[target]!r} is not found yet: "
                         "bases are found from the last layer backwards")
    return node_layers[target], basis.C


def basis_formula(method: str) -> str:
    """The formula that turns the statistics into a basis: NGF uses LIB's."""
    return "lib" if method == NGF else method
