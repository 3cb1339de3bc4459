"""Memory budget of the Jacobian passes, and scratch buffers reused from chunk to chunk.

Chunk sizes follow a byte budget (``build_graph(max_memory=...)``, default a safe share of the
device's free memory) instead of a fixed element count. Large tensors freshly allocated per chunk
cost a page fault per 4 KiB page on CPU (glibc returns big blocks to the kernel on free), which
made a third of a modular-addition build system time; the fast paths write into a
:class:`Workspace` instead, allocated once per build.
"""

from __future__ import annotations

import ctypes
import math
import sys

import torch
from torch import Tensor

# CPU: bigger chunks stop paying off once the matmuls are large, and the machine is shared.
CPU_BUDGET_CAP = 1 << 30
CPU_SHARE, CUDA_SHARE = 0.25, 0.5
# glibc mallopt parameters: keep up to 2 GiB of freed heap, grow the heap 1 GiB at a time,
# and no mmap-ed blocks (their free is a munmap, their reuse a page fault per page)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4
_retained: bool | None = None


def retain_freed_memory() -> bool:
    """Keep freed memory inside the process (glibc on Linux; elsewhere nothing happens).

    Matmuls and elementwise ops allocate their outputs; by default glibc hands large freed blocks
    back to the kernel, so every new one costs a page fault per 4 KiB page: 45% of a transformer
    block's closed-form rows were system time (1.5 s system for 2.0 s user, 750k minor faults),
    none with the heap kept. The cost is that the resident memory stays at the build's peak
    (bounded by the memory budget) instead of falling between chunks. Process-wide; done once.
    """
    global _retained
    if _retained is None:
        _retained = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL("libc.so.6")
                _retained = bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)
                                 and libc.mallopt(M_TOP_PAD, 2**30)
                                 and libc.mallopt(M_MMAP_MAX, 0))
            except (OSError, AttributeError):  # not glibc (musl has no mallopt)
                _retained = False
    return _retained


def available_memory(device: torch.device) -> int:
    """Free bytes on ``device``: cudaMemGetInfo on a GPU, MemAvailable of /proc/meminfo on CPU."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 * CPU_BUDGET_CAP  # not Linux: assume a few GiB


def memory_budget(device: torch.device, max_memory: int | float | None = None) -> int:
    """Bytes one chunk of Jacobian work may use: ``max_memory``, or a safe share of free memory
    (a quarter on CPU, at most 1 GiB; half on a GPU)."""
    if max_memory is not None:
        if not max_memory > 0:
            raise ValueError(f"max_memory must be a positive number of bytes, got {max_memory!r}")
        return int(max_memory)
    if device.type == "cuda":
        return int(CUDA_SHARE * available_memory(device))
    return int(min(CPU_BUDGET_CAP, CPU_SHARE * available_memory(device)))


class Workspace:
    """Named scratch buffers: ``get`` returns a view of a buffer kept from earlier calls, grown
    only when a larger one is asked for. A view is valid until the next ``get`` of its name."""

    def __init__(self) -> None:
        self._buffers: dict[str, Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: torch.dtype,
            device: torch.device) -> Tensor:
        numel = math.prod(shape)
        buffer = self._buffers.get(name)
        if (buffer is None or buffer.numel() < numel or buffer.dtype != dtype
                or buffer.device != device):
            buffer = torch.empty(numel, dtype=dtype, device=device)
            self._buffers[name] = buffer
        return buffer[:numel].view(shape)
