"""A build killed with SIGKILL during its second node layer resumes there, bit-identical.

The build runs in a subprocess (the process boundary is the point: nothing survives but the
files). Its data is an iterable that sleeps per batch in the killed run, so the second section
(sections run from the last layer backwards) takes long enough to be killed in; the test waits for
the first section's edge file, kills, checks the second section left no file, reruns the same
command and compares with an uninterrupted build tensor for tensor (torch.equal).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from interbasis.basis import load_graph

SCRIPT = '''
import os, sys, time
import torch
from torch import nn
from interbasis.basis import build_graph
from interbasis.progress import setup_logging

torch.set_num_threads(1)
setup_logging()


class Batches:
    """Re-iterable batches; sleeps before each one when SLOW is set (the killed run)."""

    def __init__(self, data):
        self.data = data

    def __iter__(self):
        for batch in self.data.split(50):
            if os.environ.get("SLOW"):
                time.sleep(0.15)
            yield batch


torch.manual_seed(0)
model = nn.Sequential(nn.Linear(5, 9), nn.ReLU(), nn.Linear(9, 8), nn.ReLU(), nn.Linear(8, 7),
                      nn.ReLU(), nn.Linear(7, 3)).double()
data = torch.randn(200, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
checkpoint = sys.argv[2] if len(sys.argv) > 2 else None
graph = build_graph(model, Batches(data), ["0", "2", "4", "6", "output"], checkpoint=checkpoint,
                    max_memory=2**24)
graph.save(sys.argv[1])
print("built", sys.argv[1], flush=True)
'''


def _run(script: Path, *args: str, **env: str) -> subprocess.Popen:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **env}
    return subprocess.Popen([sys.executable, str(script), *args], env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_sigkill_during_the_second_layer_then_rerun_resumes_bit_identical(tmp_path):
    script = tmp_path / "build.py"
    script.write_text(SCRIPT)
    stages = tmp_path / "stages"
    killed = _run(script, str(tmp_path / "never.pt"), str(stages), SLOW="1")
    uninterrupted = _run(script, str(tmp_path / "reference.pt"))  # meanwhile, no checkpoint
    first_section = stages / "edges3.pt"  # section 3 ("6" -> "output") runs first
    deadline = time.monotonic() + 120
    while not first_section.exists():
        assert killed.poll() is None, killed.communicate()[0]
        assert time.monotonic() < deadline, "the first section never finished"
        time.sleep(0.005)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    left = sorted(path.name for path in stages.iterdir())
    print("after SIGKILL:", left)
    assert left == ["basis3.pt", "edges3.pt", "statistics.pt"]  # killed inside section 2

    resumed = _run(script, str(tmp_path / "resumed.pt"), str(stages))
    output = resumed.communicate(timeout=300)[0]
    print(output)
    assert resumed.returncode == 0, output
    for stage in ("statistics", "basis3", "edges3"):
        assert f"resumed {stage} from" in output
    assert "resumed basis2" not in output
    assert uninterrupted.wait(timeout=300) == 0, uninterrupted.communicate()[0]

    a, b = load_graph(tmp_path / "resumed.pt"), load_graph(tmp_path / "reference.pt")
    for x, y in zip(a.layers, b.layers):
        for field in ("C", "C_pinv", "eigenvalues", "mean", "gram_eigenvalues"):
            assert torch.equal(getattr(x, field), getattr(y, field)), (x.name, field)
        if y.jacobian_eigenvalues is not None:
            assert torch.equal(x.jacobian_eigenvalues, y.jacobian_eigenvalues)
    assert all(torch.equal(e, f) for e, f in zip(a.edges, b.edges))
    # every stage file of the finished build is complete: no temporary file left behind
    assert not [path for path in stages.iterdir() if path.name.endswith(".tmp")]
