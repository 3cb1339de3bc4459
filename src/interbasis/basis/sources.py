"""Random +-1 sources that depend only on (seed, stream, probe, sample, position), not batching.

Stochastic sources (``n_sources``) and M' probes (``n_probes``) used to come from one
``torch.Generator`` consumed batch after batch, so a sample's signs depended on everything drawn
before it: on the batch size, on which sections ran before, and on how the data was split across
processes. Here every sign is a hash of its coordinates, so

- a build split into shards across ``torch.distributed`` ranks draws, for every sample, exactly
  the signs the single-process build draws for it (the shards' sample offsets are known), and
- a build resumed at a later node layer needs no generator state from the killed one.

The hash is Wellons' ``lowbias32`` integer mix, evaluated in int64 tensors with products kept below
2**63 (a 32-bit multiply in two 16-bit halves), so it is exact and identical on CPU and GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

MASK32 = 0xFFFFFFFF
# One stream per (section, pass): the M' pass and the edge pass of a section draw independently.
STREAM_JACOBIAN, STREAM_EDGES = 0, 1


def _mul32(x: Tensor, constant: int) -> Tensor:
    """(x * constant) mod 2**32 for 0 <= x < 2**32, without int64 overflow."""
    low, high = constant & 0xFFFF, constant >> 16
    return (x * low + (((x * high) & 0xFFFF) << 16)) & MASK32


def mix32(x: Tensor) -> Tensor:
    """lowbias32: a bijective 32-bit integer hash with full avalanche (int64 in, int64 out)."""
    x = x & MASK32
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def _scalar_mix(*values: int) -> int:
    h = 0x9E3779B9
    for value in values:
        for part in (value & MASK32, (value >> 32) & MASK32):
            h = int(mix32(torch.tensor(h ^ part, dtype=torch.int64)))
    return h


@dataclass(frozen=True)
class SampleSigns:
    """The +-1 draws of one batch: sample j of the batch is global sample ``offset + j``.

    Passed where the Jacobian code takes a ``generator`` (see :func:`random_bits`).
    """

    seed: int
    stream: tuple[int, ...]
    offset: int

    def bits(self, first_probe: int, shape: tuple[int, ...], device: torch.device | None = None
             ) -> Tensor:
        """0/1 int64 tensor of ``shape`` = (probes, samples, *rest): probe ``first_probe + i``,
        sample ``offset + j``, the rest's coordinates flattened (positions, features)."""
        k, n, *rest = shape
        key = _scalar_mix(self.seed, *self.stream)
        probes = torch.arange(first_probe, first_probe + k, dtype=torch.int64, device=device)
        samples = torch.arange(self.offset, self.offset + n, dtype=torch.int64, device=device)
        h = mix32(mix32(probes ^ key)[:, None] ^ samples[None, :])  # (k, n)
        n_rest = 1
        for size in rest:
            n_rest *= size
        cells = torch.arange(n_rest, dtype=torch.int64, device=device)
        h = mix32(h[:, :, None] ^ mix32(cells + 0x632BE5AB)[None, None, :])
        return (h >> 31).reshape(shape)


def random_bits(generator: torch.Generator | SampleSigns, first_probe: int,
                shape: tuple[int, ...]) -> Tensor:
    """0/1 draws of ``shape`` (probes, samples, ...): from a :class:`SampleSigns` by coordinates,
    or, for a plain ``torch.Generator`` (direct callers of the Jacobian helpers), in sequence."""
    if isinstance(generator, SampleSigns):
        return generator.bits(first_probe, shape)
    return torch.randint(0, 2, shape, generator=generator)
