"""Where the eigendecompositions of a build run: on the build's device (a GPU's float64 eigh)
instead of the CPU.

``build_graph`` is wrapped by :func:`on_build_device`, which sets the device for the call; every
:func:`interbasis.basis.bases.sorted_eigh` inside it decomposes there and hands its results back
on the input's device. On CPU (and outside a build) nothing changes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import Tensor, nn

_DEVICE: ContextVar[torch.device | None] = ContextVar("interbasis_eigh_device", default=None)


@contextmanager
def eigh_on(device: str | torch.device | None):
    """Run the eigendecompositions inside on ``device`` (None: where each matrix is)."""
    token = _DEVICE.set(None if device is None else torch.device(device))
    try:
        yield
    finally:
        _DEVICE.reset(token)


def eigh(symmetric: Tensor) -> tuple[Tensor, Tensor]:
    """``torch.linalg.eigh`` on the current build's device when that is a GPU."""
    target = _DEVICE.get()
    if target is None or target.type != "cuda" or symmetric.device == target:
        return torch.linalg.eigh(symmetric)
    values, vectors = torch.linalg.eigh(symmetric.to(target))
    return values.to(symmetric.device), vectors.to(symmetric.device)


def on_build_device(build: Callable) -> Callable:
    """Decorate ``build_graph(model, data, ..., device=None)``: its eigh calls run on its device
    (the ``device`` argument, else the model's)."""

    @functools.wraps(build)
    def wrapped(model: nn.Module, *args, **kwargs):
        device = kwargs.get("device")
        if device is None and isinstance(model, nn.Module):
            device = next((p.device for p in model.parameters()), None)
        if device is not None and torch.device(device).type != "cuda":
            device = None  # CPU builds keep the plain path
        if device is not None and not torch.cuda.is_available():
            device = None  # build_graph itself gives the one-line CUDA error
        with eigh_on(device):
            return build(model, *args, **kwargs)

    return wrapped
