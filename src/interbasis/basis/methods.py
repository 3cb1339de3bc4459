"""The method -> basis table: which formula turns a node layer's statistics into its basis.

``build_graph`` asks :func:`layer_basis` for every layer and :func:`needs_jacobian` whether the
method's basis needs the Jacobian Gram M' of the section after the layer (docs/method.md §4).
A new method is one entry here (and its name in ``bases.METHODS``).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from interbasis.basis import bases
from interbasis.basis.bases import Basis

# formula(gram, mean, jacobian_gram, center, truncation_threshold, seed) -> Basis; seed: the
# layer's own seed, for a method that draws random numbers
Formula = Callable[[Tensor, Tensor, Tensor | None, bool, float, int], Basis]


def _lib(gram: Tensor, mean: Tensor, jacobian_gram: Tensor | None, center: bool,
         tau: float, seed: int) -> Basis:
    if jacobian_gram is None:
        raise ValueError("LIB's basis needs the Jacobian Gram M' of the section after the layer")
    return bases.lib_basis(gram, mean, jacobian_gram, center, tau)


def _pca(gram: Tensor, mean: Tensor, jacobian_gram: Tensor | None, center: bool,
         tau: float, seed: int) -> Basis:
    return bases.pca_basis(gram, mean, center, tau)


def _neuron(gram: Tensor, mean: Tensor, jacobian_gram: Tensor | None, center: bool,
            tau: float, seed: int) -> Basis:
    return bases.neuron_basis(gram, has_constant=True)


def _random(gram: Tensor, mean: Tensor, jacobian_gram: Tensor | None, center: bool,
            tau: float, seed: int) -> Basis:
    return bases.random_basis(gram, mean, center, tau, seed=seed)


# name -> (formula of a layer with a section after it, formula of the last node layer, which
# has none: LIB-type methods fall back to PCA there), and whether the first needs M'.
BASES: dict[str, tuple[Formula, Formula, bool]] = {
    "lib": (_lib, _pca, True),
    "ngf": (_lib, _pca, True),  # LIB's formula on the Jacobian to the final layer (basis/ngf.py)
    "pca": (_pca, _pca, False),
    "neuron": (_neuron, _neuron, False),
    # the no-structure baseline: PCA's kept subspace, Haar-rotated per run and layer
    "random": (_random, _pca, False),
}


def needs_jacobian(method: str) -> bool:
    """Does ``method``'s basis of a layer need the Jacobian Gram M' of the section after it?"""
    return BASES[method][2]


def layer_basis(method: str, gram: Tensor, mean: Tensor, jacobian_gram: Tensor | None,
                center: bool, truncation_threshold: float, last: bool = False,
                seed: int = 0) -> Basis:
    """The basis ``method`` gives a node layer from its Gram, mean and (LIB) M'; ``last``: the
    final node layer (other than the output, whose basis is fixed); ``seed``: the layer's seed
    (``build_graph``: 1000 x run seed + layer index)."""
    inner, final, _ = BASES[method]
    formula = final if last else inner
    return formula(gram, mean, jacobian_gram, center, truncation_threshold, seed)
