"""The engine's fast and cheap paths agree with the plain computation (issue 19).

Closed-form Jacobians equal autograd at 1e-10 in float64; PCA and neuron builds skip M' without
changing their bases or edges.
"""

import pytest
import torch

from interbasis import build_graph
from interbasis.basis.sections import capture, section
from interbasis.data.modadd import all_pairs
from interbasis.models.modadd import ModAddTransformer, ModAddTransformerConfig

LAYERS = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "blocks.0.hook_resid_post",
          "output"]


def small_modadd(seed: int = 1, biases: bool = True) -> ModAddTransformer:
    cfg = ModAddTransformerConfig(d_vocab=8, d_model=12, n_heads=2, d_head=5, d_mlp=20)
    model = ModAddTransformer(cfg, seed=seed).double()
    if biases:  # non-zero biases, so the folded constant coordinate matters
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name.rsplit(".", 1)[-1].startswith("b_"):
                    param.copy_(torch.randn(param.shape, generator=generator,
                                            dtype=torch.float64))
    return model


def per_sample_autograd_jacobian(fn, x, C):
    """d (fn(x) C)[n, t, r] / d x[n, s, i] by autograd, (n, P_out, P_in, r, d)."""
    full = torch.autograd.functional.jacobian(lambda z: fn(z) @ C, x)  # (n, t, r, n, s, i)
    return torch.stack([full[i, :, :, i] for i in range(x.shape[0])]).permute(0, 1, 3, 2, 4)


def test_attention_jacobian_equals_autograd():
    folded = small_modadd().fold_bias()
    tokens = all_pairs(7)[0][:9]
    x = capture(folded, tokens, LAYERS[:1])[LAYERS[0]]
    C = torch.randn(x.shape[-1], 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    closed_form = folded.section_jacobian(*LAYERS[:2])(x, C)
    expected = per_sample_autograd_jacobian(section(folded, tokens, *LAYERS[:2]), x, C)
    assert closed_form.shape == expected.shape == (9, 1, 3, 7, x.shape[-1])
    torch.testing.assert_close(closed_form, expected, atol=1e-10, rtol=0)
    # rotated on the input side too (edges use d g / d f = (d g / d x) C_pinv^T)
    C_in = torch.randn(x.shape[-1], 4, dtype=torch.float64)
    torch.testing.assert_close(folded.section_jacobian(*LAYERS[:2])(x, C, C_in),
                               expected @ C_in, atol=1e-10, rtol=0)
    # scaled inputs (integrated gradients evaluate J at alpha x)
    torch.testing.assert_close(folded.section_jacobian(*LAYERS[:2])(0.3 * x, C),
                               per_sample_autograd_jacobian(
                                   section(folded, tokens, *LAYERS[:2]), 0.3 * x, C),
                               atol=1e-10, rtol=0)


@pytest.mark.parametrize(("integration", "n_intervals"), [("gradient", 0), ("trapezoidal", 2)])
def test_dense_attention_path_equals_generic_build(integration, n_intervals):
    model, tokens = small_modadd(), all_pairs(7)[0]
    kwargs = dict(integration=integration, n_intervals=n_intervals, batch_size=20)
    fast = build_graph(model, tokens, LAYERS, **kwargs)
    generic = build_graph(model, tokens, LAYERS, fast_paths=False, **kwargs)
    for a, b in zip(fast.layers, generic.layers):
        torch.testing.assert_close(a.eigenvalues, b.eigenvalues, atol=1e-12, rtol=1e-9)
    for a, b in zip(fast.edges, generic.edges):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-9)


@pytest.mark.parametrize("method", ["pca", "neuron"])
def test_pca_and_neuron_builds_skip_the_jacobian_gram_and_keep_their_graph(method):
    model, tokens = small_modadd(), all_pairs(7)[0]
    skipped = build_graph(model, tokens, LAYERS, method=method)
    full = build_graph(model, tokens, LAYERS, method=method, jacobian_gram=True)
    assert all(layer.jacobian_eigenvalues is None for layer in skipped.layers)
    assert all(layer.jacobian_eigenvalues is not None for layer in full.layers[:-1])
    assert skipped.settings["jacobian_gram"] is False and full.settings["jacobian_gram"] is True
    for a, b in zip(skipped.layers, full.layers):
        assert torch.equal(a.C, b.C) and torch.equal(a.eigenvalues, b.eigenvalues)
    for a, b in zip(skipped.edges, full.edges):
        assert torch.equal(a, b)


def test_lib_always_has_the_jacobian_gram():
    graph = build_graph(small_modadd(), all_pairs(7)[0], LAYERS, method="lib")
    assert all(layer.jacobian_eigenvalues is not None for layer in graph.layers[:-1])


def test_a_tiny_memory_budget_cuts_chunks_without_changing_the_graph():
    """Budgets change only how rows and samples are chunked (every path: dense, linearized,
    generic)."""
    model, tokens = small_modadd(), all_pairs(7)[0]
    for fast in (True, False):
        roomy = build_graph(model, tokens, LAYERS, fast_paths=fast)
        tight = build_graph(model, tokens, LAYERS, fast_paths=fast, max_memory=20_000)
        for a, b in zip(roomy.layers, tight.layers):
            torch.testing.assert_close(a.eigenvalues, b.eigenvalues, atol=1e-13, rtol=1e-10)
        for a, b in zip(roomy.edges, tight.edges):
            torch.testing.assert_close(a, b, atol=1e-13, rtol=1e-10)


def test_memory_budget_default_and_bad_values():
    from interbasis.basis.memory import CPU_BUDGET_CAP, Workspace, memory_budget

    cpu = torch.device("cpu")
    assert 0 < memory_budget(cpu) <= CPU_BUDGET_CAP
    assert memory_budget(cpu, 12345) == 12345
    with pytest.raises(ValueError, match="max_memory must be a positive"):
        build_graph(small_modadd(), all_pairs(7)[0], LAYERS, max_memory=0)
    workspace = Workspace()
    first = workspace.get("rows", (4, 5), torch.float64, cpu)
    smaller = workspace.get("rows", (3, 2), torch.float64, cpu)
    assert smaller.data_ptr() == first.data_ptr()  # reused, not reallocated
    assert workspace.get("rows", (10, 10), torch.float64, cpu).shape == (10, 10)


@pytest.mark.parametrize("fast", [True, False])
def test_float32_jacobians_stay_close_to_float64(fast):
    """Float32 rows (dense, linearized and generic paths) with float64 sums: ~1e-6 relative."""
    model, tokens = small_modadd(), all_pairs(7)[0]
    exact = build_graph(model, tokens, LAYERS, fast_paths=fast)
    rough = build_graph(model, tokens, LAYERS, fast_paths=fast, jacobian_dtype=torch.float32)
    assert rough.settings["jacobian_dtype"] == "float32"
    for a, b in zip(exact.layers, rough.layers):
        assert b.C.dtype == torch.float64
        # the leading features (docs/method.md §9: the tail near tau is decided by rounding)
        k = int((a.eigenvalues > 1e-4 * a.eigenvalues.max()).sum())
        torch.testing.assert_close(b.eigenvalues[:k], a.eigenvalues[:k], rtol=1e-4, atol=0)
    for a, b in zip(exact.edges, rough.edges):
        assert b.dtype == torch.float64
        rows, cols = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
        a, b = a[:rows, :cols], b[:rows, :cols]
        assert (b - a).norm() < 1e-4 * a.norm()
    with pytest.raises(ValueError, match="jacobian_dtype must be a floating"):
        build_graph(model, tokens, LAYERS, jacobian_dtype=torch.int32)


def test_sketched_jacobian_gram_is_unbiased_and_its_error_falls_with_probes(mlp, inputs):
    from interbasis.basis.graph import Batches, _jacobian_gram

    batches = Batches(inputs, 100, torch.float64, torch.device("cpu"))
    folded = __import__("interbasis").fold_bias(mlp).double()
    C_next = torch.eye(13, dtype=torch.float64)  # the input of layer "2" is 12 + 1 wide

    def gram(n_probes, seed=0):
        return _jacobian_gram(folded, batches, "0", "2", C_next, [1.0], [1.0], None,
                              torch.Generator().manual_seed(seed), fast=False,
                              n_probes=n_probes)

    exact = gram(None)
    errors = {k: sum((gram(k, seed) - exact).norm().item() for seed in range(3))
              / (3 * exact.norm().item()) for k in (1, 4, 32)}
    assert errors[32] < errors[4] < errors[1]
    mean = sum(gram(2, seed) for seed in range(40)) / 40  # unbiased: the mean converges
    assert (mean - exact).norm() < 0.5 * errors[4] * exact.norm()


def test_n_probes_build_keeps_exact_edges_for_its_basis_and_rejects_bad_values(mlp, inputs):
    graph = build_graph(mlp, inputs, ["0", "2", "4", "output"], n_probes=64, fast_paths=False)
    assert graph.settings["n_probes"] == 64
    assert all(e.min() >= 0 for e in graph.edges)
    with pytest.raises(ValueError, match="n_probes must be None"):
        build_graph(mlp, inputs, ["0", "2", "4", "output"], n_probes=0)


CUDA = torch.cuda.is_available()


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_cuda_build_and_ablations_equal_cpu():
    from interbasis import edge_ablation, node_ablation_curve

    model, tokens = small_modadd(), all_pairs(7)[0]
    labels = (tokens[:, 0] + tokens[:, 1]) % 7
    on_cpu = build_graph(model, tokens, LAYERS)
    on_gpu = build_graph(model, tokens, LAYERS, device="cuda")
    for a, b in zip(on_cpu.layers, on_gpu.layers):
        assert b.C.device.type == "cpu"  # results come back as CPU float64
        torch.testing.assert_close(b.eigenvalues, a.eigenvalues, atol=1e-12, rtol=1e-9)
    for a, b in zip(on_cpu.edges, on_gpu.edges):
        torch.testing.assert_close(b, a, atol=1e-12, rtol=1e-9)
    data = (tokens, labels)
    cpu_curve = node_ablation_curve(model, on_cpu, LAYERS[1], data)
    gpu_curve = node_ablation_curve(model, on_cpu, LAYERS[1], data, device="cuda")
    assert gpu_curve.scores == pytest.approx(cpu_curve.scores, abs=1e-9)
    assert (edge_ablation(model, on_cpu, 0, data, device="cuda").n_required
            == edge_ablation(model, on_cpu, 0, data).n_required)


@pytest.mark.skipif(CUDA, reason="checks the error on a machine without CUDA")
def test_cuda_without_cuda_is_one_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        build_graph(small_modadd(), all_pairs(7)[0], LAYERS, device="cuda")


def test_explicit_cpu_device_and_moments_on_a_device():
    from interbasis.basis.stats import RunningMoments

    model, tokens = small_modadd(), all_pairs(7)[0]
    default, explicit = build_graph(model, tokens, LAYERS), build_graph(model, tokens, LAYERS,
                                                                          device="cpu")
    assert all(torch.equal(a.C, b.C) for a, b in zip(default.layers, explicit.layers))
    moments = RunningMoments(3, device="cpu")
    moments.update(torch.tensor([[1.0, 2.0, 1.0], [3.0, 4.0, 1.0]], dtype=torch.float64))
    assert moments.gram(center=False).device.type == "cpu"


def test_eigh_outside_a_gpu_build_is_the_plain_cpu_path(monkeypatch):
    from interbasis.basis import eigh_device
    from interbasis.basis.bases import sorted_eigh

    matrix = torch.randn(9, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    matrix = matrix @ matrix.T
    plain = sorted_eigh(matrix)
    with eigh_device.eigh_on("cpu"):
        on_cpu = sorted_eigh(matrix)
    assert all(torch.equal(a, b) for a, b in zip(plain, on_cpu))
    seen = []
    real_eigh = torch.linalg.eigh
    monkeypatch.setattr(torch.linalg, "eigh", lambda m: seen.append(m.device) or real_eigh(m))
    build_graph(small_modadd(), all_pairs(7)[0], LAYERS)
    assert seen and {device.type for device in seen} == {"cpu"}
    assert eigh_device._DEVICE.get() is None  # the build leaves no device behind


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_cuda_build_decomposes_on_the_gpu_in_float64(monkeypatch):
    seen = []
    real_eigh = torch.linalg.eigh
    monkeypatch.setattr(torch.linalg, "eigh",
                        lambda m: seen.append((m.device.type, m.dtype)) or real_eigh(m))
    on_gpu = build_graph(small_modadd(), all_pairs(7)[0], LAYERS, device="cuda")
    assert seen and set(seen) == {("cuda", torch.float64)}
    monkeypatch.setattr(torch.linalg, "eigh", real_eigh)
    on_cpu = build_graph(small_modadd(), all_pairs(7)[0], LAYERS)
    for a, b in zip(on_cpu.layers, on_gpu.layers):
        torch.testing.assert_close(b.eigenvalues, a.eigenvalues, atol=1e-12, rtol=1e-9)


RETAIN_SCRIPT = """
import resource, torch
from interbasis.basis.memory import retain_freed_memory
def work():  # a 64 MiB input, a scaled and a shifted copy, all freed again (elementwise: a
    # matmul's output would fault the same pages but costs seconds of arithmetic)
    return (torch.ones(2**15, 256, dtype=torch.float64) * 2 + 1).sum()
def faults():
    work()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        work()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
without = faults()
print(without, faults() if retain_freed_memory() else "unsupported")
"""


def test_retained_heap_cuts_the_page_faults_of_repeated_large_tensors():
    import os
    import subprocess
    import sys

    without, with_heap = subprocess.run([sys.executable, "-c", RETAIN_SCRIPT], check=True,
                                        capture_output=True, text=True,
                                        env=os.environ).stdout.split()
    if with_heap == "unsupported":
        pytest.skip("not glibc on Linux")
    # without: a fault per 4 KiB page of every 64 MiB tensor (~490k); with: the heap grows once
    assert int(with_heap) * 4 < int(without)
