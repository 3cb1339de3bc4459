"""The LLC estimator (interbasis.analysis.llc, devinterp's SGLD) on models whose learning
coefficient is known in closed form, its reproducibility, its divergence outcome, and the
``analysis.llc=true`` run end to end."""

import json
import math

import pandas as pd
import pytest
import torch
from torch import nn

pytest.importorskip("devinterp", reason="devinterp not installed (pip install -e '.[dev]')")

from interbasis.analysis.llc import LLC_KEY, LLCSettings, estimate_llc  # noqa: E402

# The settings of the known-answer cases: n = 1000 samples, 10 batches of 100 per pass, so the
# 100 burn-in steps and the 500 draws cover whole passes; n beta = 100 and a weak pull (gamma 1)
# leave the posterior to the likelihood: sum_i n beta h_i / (n beta h_i + gamma) = 0.99 d / 2.
KNOWN = LLCSettings(lr=1e-3, localization=1.0, nbeta=100.0, chains=4, draws=500, burnin=100,
                    batch_size=100, seed=0)


def gaussian_nll(model: nn.Module, x, y):
    """Per-sample negative log-likelihood of y ~ N(model(x), I), up to a constant."""
    return 0.5 * ((model(x) - y) ** 2).sum(-1)


def regression_data(n_in: int, n_out: int, rank: int, n: int = 1000, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, n_in, generator=generator)
    truth = (torch.randn(n_out, rank, generator=generator)
             @ torch.randn(rank, n_in, generator=generator))
    return x, x @ truth.T + torch.randn(n, n_out, generator=generator)


def fit(model: nn.Module, x, y) -> nn.Module:
    """The minimum of the training loss (the LLC is a property of a local minimum)."""
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2000):
        optimizer.zero_grad()
        gaussian_nll(model, x, y).mean().backward()
        optimizer.step()
    return model


def aoyagi_watanabe_rrr(M: int, N: int, H: int, r: int) -> float:
    """RLCT of reduced rank regression y = B A x, x in R^M, y in R^N, inner width H, true rank r.

    Aoyagi and Watanabe, "Stochastic complexities of reduced rank regression in Bayesian
    estimation", Neural Networks 18(7), 924-933 (2005), Theorem 1:
    if N + r <= M + H, M + r <= N + H and H + r <= M + N:
        lambda = (2 (H + r)(M + N) - (M - N)^2 - (H + r)^2) / 8, plus 1/8 when M + H + N + r is odd;
    if M + H < N + r: lambda = (H M - H r + N r) / 2;
    if N + H < M + r: lambda = (H N - H r + M r) / 2;
    if M + N < H + r: lambda = M N / 2.
    """
    if M + H < N + r:
        return (H * M - H * r + N * r) / 2
    if N + H < M + r:
        return (H * N - H * r + M * r) / 2
    if M + N < H + r:
        return M * N / 2
    odd = (M + H + N + r) % 2
    return (2 * (H + r) * (M + N) - (M - N) ** 2 - (H + r) ** 2 + odd) / 8


def test_aoyagi_watanabe_formula_agrees_with_the_regular_count_where_it_must():
    # full inner width and full true rank: the product is a free M x N matrix, lambda = M N / 2
    assert aoyagi_watanabe_rrr(3, 3, 3, 3) == 4.5
    assert aoyagi_watanabe_rrr(2, 5, 9, 2) == 5.0  # M + N < H + r
    assert aoyagi_watanabe_rrr(3, 3, 3, 1) == 4.0  # the singular case tested below


def test_full_rank_linear_regression_gives_half_the_parameter_count():
    """A regular model: lambda = d / 2 (d = 12 weights); the estimate within 10%."""
    x, y = regression_data(4, 3, rank=3)
    model = nn.Linear(4, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.linalg.lstsq(x, y).solution.T)  # the exact minimum
    estimate = estimate_llc(model, x, y, gaussian_nll, KNOWN)
    assert estimate.diverged is None and estimate.settled, estimate.line()
    assert estimate.llc == pytest.approx(12 / 2, rel=0.10), estimate.line()


def test_reduced_rank_regression_matches_aoyagi_watanabe():
    """y = B A x with M = N = H = 3 and true rank 1: lambda = 4 (Aoyagi & Watanabe 2005), well
    below the regular d / 2 = 9 of its 18 weights. The estimate within 25% of 4 (SGLD at finite
    n beta overestimates singular models a little; 4.7 here) and below 6."""
    x, y = regression_data(3, 3, rank=1)
    model = fit(nn.Sequential(nn.Linear(3, 3, bias=False), nn.Linear(3, 3, bias=False)), x, y)
    truth = aoyagi_watanabe_rrr(3, 3, 3, 1)
    estimate = estimate_llc(model, x, y, gaussian_nll, KNOWN)
    assert estimate.diverged is None, estimate.line()
    assert estimate.llc == pytest.approx(truth, rel=0.25), estimate.line()
    assert estimate.llc < 6 < 18 / 2


def small_case():
    x, y = regression_data(3, 2, rank=2, n=200)
    model = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.linalg.lstsq(x, y).solution.T)
    return model, x, y


FAST = LLCSettings(lr=1e-3, localization=1.0, nbeta=50.0, chains=2, draws=40, burnin=10,
                   batch_size=50, seed=3)


def test_same_seed_same_estimate_and_the_model_is_left_alone():
    model, x, y = small_case()
    before = model.weight.detach().clone()
    first = estimate_llc(model, x, y, gaussian_nll, FAST)
    again = estimate_llc(model, x, y, gaussian_nll, FAST)
    other = estimate_llc(model, x, y, gaussian_nll, LLCSettings(**{**FAST.__dict__, "seed": 4}))
    assert first.per_chain == again.per_chain
    assert first.traces.equals(again.traces)
    assert other.per_chain != first.per_chain
    assert torch.equal(model.weight, before)
    assert list(first.traces.columns) == ["chain", "step", "loss"]
    assert len(first.traces) == FAST.chains * (FAST.burnin + FAST.draws)
    summary = first.summary()
    assert summary[LLC_KEY] == pytest.approx(sum(first.per_chain) / 2)
    assert summary[f"{LLC_KEY}_std"] >= 0 and summary[f"{LLC_KEY}_nbeta"] == 50.0


def test_diverged_chains_store_no_llc_and_say_so_in_one_line():
    model, x, y = small_case()
    estimate = estimate_llc(model, x, y, gaussian_nll,
                            LLCSettings(**{**FAST.__dict__, "lr": 10.0, "nbeta": 1e4}))
    assert estimate.diverged is not None and estimate.llc is None
    assert LLC_KEY not in estimate.summary() and f"{LLC_KEY}_std" not in estimate.summary()
    assert estimate.summary()[f"{LLC_KEY}_diverged"] == 1
    line = estimate.line()
    assert "\n" not in line and "chains diverged" in line and "no LLC stored" in line


def test_default_inverse_temperature_is_n_over_log_n():
    assert LLCSettings().inverse_temperature(1000) == pytest.approx(1000 / math.log(1000))
    assert LLCSettings(nbeta=7.0).inverse_temperature(1000) == 7.0


def test_batch_larger_than_the_data_is_one_clear_error():
    model, x, y = small_case()
    with pytest.raises(ValueError, match="batch_size 500 is larger than the 200"):
        estimate_llc(model, x, y, gaussian_nll, LLCSettings(batch_size=500))


@pytest.mark.integration
def test_llc_only_run_end_to_end(tmp_path):
    from hydra_runs import run_in_process

    out = run_in_process("debug=tiny", "analysis.llc=true", "analysis.graph=false",
                  "analysis.llc_draws=20", "analysis.llc_burnin=5", "analysis.llc_chains=2",
                  "analysis.llc_batch_size=16", "analysis.llc_lr=1e-4", results=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    run_dir = next((tmp_path / "runs" / "debug").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary[f"{LLC_KEY}_diverged"] == 0 and math.isfinite(summary[LLC_KEY])
    assert (run_dir / "llc_traces.csv").is_file()
    assert not (run_dir / "graph_lib.pt").exists()  # analysis.graph=false: no basis
    assert "LLC " in out.stdout


@pytest.mark.integration
def test_a_run_whose_chains_diverge_says_so_in_one_line_and_stores_no_llc(tmp_path):
    from hydra_runs import run_in_process

    out = run_in_process("debug=tiny", "analysis.llc=true", "analysis.graph=false",
                         "analysis.llc_draws=4", "analysis.llc_burnin=2", "analysis.llc_chains=2",
                         "analysis.llc_batch_size=16", "analysis.llc_lr=1e3",
                         "analysis.llc_nbeta=1e6", results=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]  # the run completes, without an LLC
    summary = json.loads((next((tmp_path / "runs" / "debug").iterdir()) / "summary.json")
                         .read_text())
    assert summary[f"{LLC_KEY}_diverged"] == 1
    assert LLC_KEY not in summary and f"{LLC_KEY}_std" not in summary
    lines = [line for line in out.stdout.splitlines() if line.startswith("LLC")]
    assert len(lines) == 1 and "chains diverged" in lines[0] and "no LLC stored" in lines[0]
    assert summary["model/params_into/output"] > 0  # the section sizes of the counting rule


def test_calibration_table_has_one_cell_per_setting(tmp_path):
    from interbasis.analysis.llc import calibration_table
    from interbasis.results import RunDirectory

    grid = {(10.0, 1e-4): {f"{LLC_KEY}_diverged": 1},
            # 42 > d / 2 = 30: not a learning coefficient, marked
            (100.0, 1e-4): {LLC_KEY: 42.0, f"{LLC_KEY}_std": 1.5, f"{LLC_KEY}_settled": 1,
                            f"{LLC_KEY}_drift": 0.05, f"{LLC_KEY}_diverged": 0,
                            "model/n_params": 60},
            (100.0, 3e-5): {LLC_KEY: 9.0, f"{LLC_KEY}_std": 0.5, f"{LLC_KEY}_settled": 0,
                            f"{LLC_KEY}_drift": 0.4, f"{LLC_KEY}_diverged": 0,
                            "model/n_params": 60}}
    for (gamma, lr), summary in grid.items():
        run = RunDirectory.for_run(tmp_path, "llc_calibration", f"g={gamma},lr={lr}")
        run.write_config({"analysis": {"llc_localization": gamma, "llc_lr": lr}})
        run.write_summary({**summary, "experiment": "llc_calibration", "method": "lib",
                           "seed": 0, "model": "modadd"})
    table = calibration_table(tmp_path / "runs" / "llc_calibration").splitlines()
    assert table[0] == "| gamma \\ epsilon | 3e-05 | 0.0001 |"
    assert table[2] == "| 10 | - | diverged |"
    assert table[3] == "| 100 | 9.0 \u00b1 0.5 (drift 0.40) | 42.0 \u00b1 1.5 (> d/2) |"


@pytest.mark.slow
def test_completing_the_llc_over_training_gives_what_a_full_run_gives(tmp_path):
    import os
    import subprocess
    import sys

    from interbasis.analysis.llc_complete import complete

    common = ("debug=tiny", "train.snapshot_every=25", "analysis.llc=true",
              "analysis.graph=false", "analysis.llc_draws=4", "analysis.llc_burnin=2",
              "analysis.llc_chains=2", "analysis.llc_batch_size=16", "analysis.llc_lr=1e-4")
    part, full = tmp_path / "part", tmp_path / "full"
    for results, every in ((part, 50), (full, 0)):  # slow-marked: a loaded machine's timeout
        out = subprocess.run([sys.executable, "-m", "interbasis.run", *common,
                              f"analysis.llc_snapshot_every={every}"],
                             env={**os.environ, "INTERBASIS_RESULTS": str(results),
                                  "WANDB_MODE": "disabled"},
                             capture_output=True, text=True, timeout=1800)
        assert out.returncode == 0, out.stderr[-2000:]
    old = next((part / "runs" / "debug").iterdir())
    assert pd.read_csv(old / "degeneracy_over_training.csv")[LLC_KEY].isna().sum() == 1
    new = complete(old, log=lambda line: None)
    completed = pd.read_csv(new / "degeneracy_over_training.csv").set_index("step")
    reference = pd.read_csv(next((full / "runs" / "debug").iterdir())
                            / "degeneracy_over_training.csv").set_index("step")
    assert completed[LLC_KEY].notna().all()
    assert completed[LLC_KEY].to_numpy() == pytest.approx(reference[LLC_KEY].to_numpy())
    assert json.loads((new / "meta.json").read_text())["llc_completed"]["steps_added"] == [25]
    assert json.loads((new / "summary.json").read_text())["status"] == "complete"
    with pytest.raises(ValueError, match="already complete"):
        complete(old, log=lambda line: None)


def test_the_toy_is_sampled_with_its_one_tied_weight_and_windows_as_rows_of_predictions():
    from interbasis.analysis.llc import TiedToy, half_squared_error, token_cross_entropy
    from interbasis.models.poly_toy import as_sequential

    W = torch.randn(6, 4)
    toy, untied = TiedToy(W), as_sequential(W)
    eye = torch.eye(6)
    assert torch.allclose(toy(eye), untied(eye))  # the same function...
    assert sum(p.numel() for p in toy.parameters()) == 24  # ...with W counted once
    with torch.no_grad():
        assert torch.allclose(half_squared_error(toy, eye, eye),
                              0.5 * (toy(eye) - eye).square().sum(1).double())

    class Logits(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.table = nn.Embedding(5, 5)

        def forward(self, x):
            return self.table(x)

    model, x, y = Logits(), torch.randint(0, 5, (3, 7)), torch.randint(0, 5, (3, 7))
    with torch.no_grad():
        per_window = token_cross_entropy(model, x, y)
    assert per_window.shape == (3,)
    expected = torch.nn.functional.cross_entropy(model(x).double().flatten(0, 1), y.flatten(),
                                                 reduction="none").view(3, 7).mean(1).detach()
    assert torch.allclose(per_window, expected)
