"""Running a model between node layers with forward pre-hooks.

A node layer is the INPUT of a named module (or ``"output"``, the model's output). Every model
family plugs in through this one interface: the section from node layer l to l+1 is "run the model
on the batch, replace the input of module l by x, and read the input of module l+1". The prefix
before l is recomputed but does not depend on x, so autograd and ``torch.func`` only differentiate
the section.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

OUTPUT = "output"


class NodeLayerError(ValueError):
    """A node-layer name or order that does not fit the model."""


class _Stop(Exception):  # noqa: N818 - control flow, not an error
    """Raised by a hook to end the forward pass once the wanted activation is seen."""

    def __init__(self, value: Tensor):
        self.value = value


def model_output(output: object) -> Tensor:
    """The tensor a model returns: itself, ``.logits`` (transformers) or the first tuple element."""
    if isinstance(output, Tensor):
        return output
    logits = getattr(output, "logits", None)
    if isinstance(logits, Tensor):
        return logits
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    raise TypeError(f"cannot read a tensor from a model output of type {type(output).__name__}")


def batch_inputs(batch: object) -> object:
    """Model inputs of a batch: the batch itself, or the first element of an (inputs, ...) pair."""
    if isinstance(batch, (tuple, list)):
        return batch[0]
    return batch


def resolve_modules(model: nn.Module, names: Iterable[str]) -> dict[str, nn.Module]:
    """Map node-layer names to submodules, with one clear error for a name that is not one."""
    modules = dict(model.named_modules())
    resolved = {}
    for name in names:
        if name == OUTPUT:
            continue
        if name not in modules or name == "":
            choices = [n for n in modules if n] + [OUTPUT]
            shown = ", ".join(choices[:40]) + (", ..." if len(choices) > 40 else "")
            raise NodeLayerError(f"node layer {name!r} is not a submodule of "
                                 f"{type(model).__name__}; valid names: {shown}")
        resolved[name] = modules[name]
    return resolved


@contextmanager
def pre_hooks(model: nn.Module, hooks: dict[str, Callable[[Tensor], Tensor | None]]) -> Iterator:
    """Install forward pre-hooks that see (and may replace) the first input of named modules."""
    modules = resolve_modules(model, hooks)
    handles = []
    for name, fn in hooks.items():
        def hook(module, args, fn=fn):
            replaced = fn(args[0])
            return None if replaced is None else (replaced, *args[1:])
        handles.append(modules[name].register_forward_pre_hook(hook))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def capture(model: nn.Module, inputs: object, names: list[str]) -> dict[str, Tensor]:
    """Run the model once and return the input of each named module (and ``"output"``).

    Stops after the last wanted activation; raises if a node layer is skipped or runs twice, since a
    section is only well defined when each node layer is crossed exactly once.
    """
    seen: dict[str, Tensor] = {}
    order: list[str] = []
    wanted = [n for n in names if n != OUTPUT]

    def recorder(name: str):
        def record(x: Tensor) -> None:
            if name in seen:
                raise NodeLayerError(f"module {name!r} is called more than once per forward "
                                     "pass; a node layer must be crossed exactly once")
            seen[name] = x
            order.append(name)
            if OUTPUT not in names and len(seen) == len(wanted):
                raise _Stop(x)
        return record

    with pre_hooks(model, {name: recorder(name) for name in wanted}):
        try:
            seen_output = model_output(model(inputs))
        except _Stop:
            seen_output = None
    missing = [n for n in wanted if n not in seen]
    if missing:
        raise NodeLayerError(f"node layer(s) {missing} are never called in the forward pass")
    if order != wanted:
        raise NodeLayerError(f"node layers must be listed in model order: the forward pass "
                             f"reaches them as {order + ([OUTPUT] if OUTPUT in names else [])}")
    if OUTPUT in names:
        assert seen_output is not None  # _Stop is raised only when the output is not wanted
        seen[OUTPUT] = seen_output
    return seen


def section(model: nn.Module, inputs: object, name_in: str, name_out: str
            ) -> Callable[[Tensor], Tensor]:
    """The function x -> activation at ``name_out`` when the input of ``name_in`` is replaced by x.

    Works under ``torch.func`` (vjp, vmap): the replacement is plain Python in a pre-hook.
    """

    def run(x: Tensor) -> Tensor:
        hooks: dict[str, Callable] = {name_in: lambda _: x}
        if name_out != OUTPUT:
            def stop(value: Tensor) -> None:
                raise _Stop(value)
            hooks[name_out] = stop
        with pre_hooks(model, hooks):
            try:
                return model_output(model(inputs))
            except _Stop as stopped:
                return stopped.value

    return run


def run_replacing(model: nn.Module, inputs: object, name: str, x: Tensor) -> Tensor:
    """Model output with the input of module ``name`` replaced by x (``"output"``: x itself)."""
    if name == OUTPUT:
        return x
    with pre_hooks(model, {name: lambda _: x}):
        return model_output(model(inputs))


@torch.no_grad()
def run_model(model: nn.Module, inputs: object) -> Tensor:
    return model_output(model(inputs))
