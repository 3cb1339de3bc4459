"""Bias folding: every node-layer activation gets a last coordinate that is always 1
(docs/method.md §2).

LIB treats biases as linear weights of that constant coordinate. Two ways in:

- ``nn.Sequential`` MLPs made of ``nn.Linear`` and ReLU / GELU / Identity are folded here.
- Any other model folds itself by implementing :class:`SelfFolding`: ``fold_bias()`` returns a
  folded copy that keeps the module names of its node layers, carries the constant as the last
  coordinate of every node-layer input, and produces the same outputs as the unfolded model.

A folded model has ``is_bias_folded = True``; folding it again returns it unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Protocol, TypeVar, runtime_checkable

import torch
from torch import Tensor, nn

from interbasis.basis.linearized import LinearizedSection, activation_gate

FOLDABLE_ACTIVATIONS = (nn.ReLU, nn.GELU, nn.Identity)


@runtime_checkable
class SelfFolding(Protocol):
    """A model that knows how to fold its own biases (the transformers implement this)."""

    def fold_bias(self) -> nn.Module:
        """Return a folded copy (``is_bias_folded = True``); never modify ``self``."""
        ...


class _FlaggedModel(Protocol):
    """What :func:`flagged_folded_copy` reads and sets on a model (declared on its class)."""

    is_bias_folded: bool

    def modules(self) -> Iterator[nn.Module]: ...


class _FoldingPart(Protocol):
    """A part whose forward reads the stream as folded once ``folded`` is set."""

    folded: bool


FlaggedModel = TypeVar("FlaggedModel", bound=_FlaggedModel)


class FoldError(TypeError):
    """The model cannot be folded by interbasis."""


def is_folded(model: nn.Module) -> bool:
    return bool(getattr(model, "is_bias_folded", False))


def fold_bias(model: nn.Module) -> nn.Module:
    """Return a bias-folded copy of ``model`` (the model itself if it is already folded)."""
    if is_folded(model):
        return model
    if isinstance(model, SelfFolding):
        folded = model.fold_bias()
        if not is_folded(folded):
            raise FoldError(f"{type(model).__name__}.fold_bias() must return a model with "
                            "is_bias_folded = True")
        return folded
    if isinstance(model, nn.Sequential):
        return fold_sequential(model)
    raise FoldError(
        f"cannot fold a {type(model).__name__}: give an nn.Sequential of nn.Linear with "
        f"{', '.join(a.__name__ for a in FOLDABLE_ACTIVATIONS)} activations, a model with a "
        "fold_bias() method (interbasis.SelfFolding), or a model already folded "
        "(is_bias_folded = True)"
    )


def flagged_folded_copy(model: FlaggedModel, part_type: type[_FoldingPart]) -> FlaggedModel:
    """For a :class:`SelfFolding` model whose parts read the stream differently once folded: a
    deep copy with ``is_bias_folded`` set and ``folded = True`` on every ``part_type`` submodule.
    The parameters are copies of the same values; ``model`` is left untouched."""
    folded = copy.deepcopy(model)
    folded.is_bias_folded = True
    for module in folded.modules():
        if isinstance(module, part_type):
            module.folded = True
    return folded


def frozen_folded_copy(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A folded copy of ``model`` in ``dtype``, in eval mode with frozen parameters."""
    folded = copy.deepcopy(fold_bias(model)).to(dtype).eval()
    for parameter in folded.parameters():
        parameter.requires_grad_(False)
    return folded


def constant_preimage(act: nn.Module) -> float:
    """The pre-activation r1 with act(r1) = 1: 1 for ReLU and identity, solved for GELU."""
    if isinstance(act, (nn.ReLU, nn.Identity)):
        return 1.0
    r1 = torch.tensor(1.0, dtype=torch.float64)
    for _ in range(100):  # Newton's method; converges in a handful of steps from 1.0
        r1.requires_grad_(True)
        residual = act(r1) - 1.0
        (slope,) = torch.autograd.grad(residual, r1)
        step = (residual / slope).detach()
        r1 = (r1 - step).detach()
        if abs(step.item()) < 1e-16:
            break
    return r1.item()


class FoldedSequential(nn.Sequential):
    """An ``nn.Sequential`` whose forward appends the constant coordinate to its input.

    Module names (``"0"``, ``"1"``, ...) are those of the unfolded model, so node-layer names carry
    over unchanged.
    """

    is_bias_folded = True

    def forward(self, x: Tensor) -> Tensor:
        ones = torch.ones(*x.shape[:-1], 1, dtype=x.dtype, device=x.device)
        return super().forward(torch.cat([x, ones], dim=-1))

    def linearize_section(self, name_in: str, name_out: str) -> LinearizedSection | None:
        """The fast-path form of a section that is a Linear, optionally followed by an activation.

        Other sections (e.g. starting at an activation) return None and take the generic path.
        """
        stop = len(self) if name_out == "output" else int(name_out)
        modules = list(self)[int(name_in):stop]
        if not modules or not isinstance(modules[0], nn.Linear) or len(modules) > 2:
            return None
        weight = modules[0].weight
        if len(modules) == 1:  # a linear section: all of it is the skip term
            return LinearizedSection(
                out_map=weight.new_zeros(weight.shape[0], 0),
                in_map=weight.new_zeros(0, weight.shape[1]),
                gate=lambda x, alphas, weights: x.new_zeros(x.shape[0], 0), skip=weight)
        if not isinstance(modules[1], FOLDABLE_ACTIVATIONS):
            return None
        identity = torch.eye(weight.shape[0], dtype=weight.dtype, device=weight.device)
        return LinearizedSection(out_map=identity, in_map=weight,
                                 gate=activation_gate(lambda x: x @ weight.T, modules[1]),
                                 activation=modules[1])


def fold_sequential(model: nn.Sequential) -> FoldedSequential:
    """Fold an MLP ``nn.Sequential(Linear, act, Linear, act, ..., Linear)``.

    Each Linear ``x -> x W^T + b`` becomes a bias-free Linear on ``[x, 1]``; every Linear but the
    last gets an extra output unit fed by weight r1 from the input's constant, so that after the
    following activation it is exactly 1 again (gradients flow through it, as docs/method.md
    section 2 requires).
    """
    modules = list(model)
    linear_positions = [i for i, m in enumerate(modules) if isinstance(m, nn.Linear)]
    for name, module in model.named_children():
        if not isinstance(module, (nn.Linear, *FOLDABLE_ACTIVATIONS)):
            raise FoldError(
                f"cannot fold module {name!r} ({type(module).__name__}) of the nn.Sequential: "
                f"only nn.Linear and {', '.join(a.__name__ for a in FOLDABLE_ACTIVATIONS)} fold; "
                "implement fold_bias() (interbasis.SelfFolding) for other models"
            )
    if not linear_positions:
        raise FoldError("cannot fold an nn.Sequential without any nn.Linear layer")

    folded = []
    for i, module in enumerate(modules):
        if not isinstance(module, nn.Linear):
            folded.append(copy.deepcopy(module))
            continue
        is_last = i == linear_positions[-1]
        following = modules[i + 1] if i + 1 < len(modules) else None
        activation = following if isinstance(following, FOLDABLE_ACTIVATIONS) else nn.Identity()
        folded.append(_fold_linear(module, keep_constant=not is_last,
                                   r1=constant_preimage(activation)))
    result = FoldedSequential(*folded)
    result.train(model.training)
    return result


def _fold_linear(linear: nn.Linear, keep_constant: bool, r1: float) -> nn.Linear:
    d_out, d_in = linear.weight.shape
    extra = 1 if keep_constant else 0
    param = linear.weight
    new = nn.Linear(d_in + 1, d_out + extra, bias=False, device=param.device, dtype=param.dtype)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:d_out, :d_in] = linear.weight
        if linear.bias is not None:
            new.weight[:d_out, d_in] = linear.bias
        if keep_constant:
            new.weight[d_out, d_in] = r1
    return new
