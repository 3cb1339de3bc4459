"""Training the modular-addition transformer: loss goes down, resume is exact, the cache works."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from interbasis.models.modadd import ModAddTransformer, ModAddTransformerConfig
from interbasis.training.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    checkpoint_path,
    load_checkpoint,
)
from interbasis.training.modadd import (
    ModAddDataConfig,
    ModAddRun,
    ModAddTrainConfig,
    TrainingDiverged,
    load_or_train,
    lr_at,
    main,
    model_from_checkpoint,
    train,
)

P = 11
TINY_MODEL = ModAddTransformerConfig(d_vocab=P + 1, d_model=16, n_heads=2, d_head=8, d_mlp=32)


def tiny_run(steps: int = 20, threads: int = 1, flush_denormal: bool = True,
             **train_overrides) -> ModAddRun:
    settings = {"lr": 1e-2, "eval_every": 5, "save_every": 5, **train_overrides}
    train_cfg = ModAddTrainConfig(steps=steps, **settings)
    return ModAddRun(seed=3, model=TINY_MODEL, data=ModAddDataConfig(name="modadd", p=P),
                     train=train_cfg, threads=threads, flush_denormal=flush_denormal)


def test_training_reduces_the_loss() -> None:
    result = train(tiny_run(steps=30), log=None)
    curve = result.checkpoint["curve"]
    assert curve["step"] == [0, 5, 10, 15, 20, 25, 30]
    assert curve["train_loss"][-1] < 0.8 * curve["train_loss"][0]
    assert result.steps_trained == 30 and result.path is None


def test_denormal_flushing_is_on_while_training_only() -> None:
    """Training flushes float32 denormals (they made late training 2.3x slower) and gives the
    process its default back; the flushed and unflushed runs agree to float32 rounding."""
    denormal = torch.tensor([1e-40], dtype=torch.float32)
    flushed = train(tiny_run(steps=8), log=None).model.state_dict()
    assert (denormal * 1.0).item() != 0.0  # not flushed any more after train() returned
    exact = train(tiny_run(steps=8, flush_denormal=False), log=None).model.state_dict()
    for name, value in flushed.items():
        torch.testing.assert_close(value, exact[name], rtol=1e-4, atol=1e-6)


def test_two_thread_training_uses_the_plain_forward_and_matches_one_thread() -> None:
    """One thread trains through forward_fast, more through forward (faster there); the two runs
    agree to float32 rounding."""
    one = train(tiny_run(steps=8), log=None).model.state_dict()
    calls = []
    original = ModAddTransformer.forward_fast

    def counting(self, tokens):
        calls.append(tokens.shape[0])
        return original(self, tokens)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ModAddTransformer, "forward_fast", counting)
        two = train(tiny_run(steps=8, threads=2), log=None).model.state_dict()
        evals = len(calls)  # evaluation uses forward_fast at any thread count
        train(tiny_run(steps=8), log=None)
    assert evals == 2 * 3  # steps 0, 5, 8: train and test splits, no training step
    assert len(calls) - evals == evals + 8  # one thread: the same evals plus 8 steps
    for name, value in one.items():
        if name.endswith("b_K"):
            # The output does not depend on the key bias (it shifts every score of a query
            # alike), so its gradient is rounding noise, which AdamW scales up to lr-sized steps.
            continue
        torch.testing.assert_close(value, two[name], rtol=1e-4, atol=1e-6)


def test_training_is_deterministic() -> None:
    first = train(tiny_run(steps=8), log=None).model.state_dict()
    second = train(tiny_run(steps=8), log=None).model.state_dict()
    for name, value in first.items():
        assert torch.equal(value, second[name]), name


def test_warmup_is_linear_then_constant() -> None:
    cfg = ModAddTrainConfig(lr=1e-3, warmup_steps=10)
    assert [lr_at(step, cfg) for step in (0, 4, 9, 10, 5000)] == pytest.approx(
        [1e-4, 5e-4, 1e-3, 1e-3, 1e-3]
    )


def test_resume_reproduces_uninterrupted_training(tmp_path: Path) -> None:
    straight = load_or_train(tiny_run(steps=20), tmp_path / "straight", log=None)
    first_half = load_or_train(tiny_run(steps=10), tmp_path / "split", log=None)
    assert first_half.checkpoint["step"] == 10
    resumed = load_or_train(tiny_run(steps=20), tmp_path / "split", log=None)
    assert resumed.steps_trained == 10 and resumed.path == first_half.path
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    straight_adam = straight.checkpoint["optimizer_state"]["state"]
    resumed_adam = resumed.checkpoint["optimizer_state"]["state"]
    for index, state in straight_adam.items():
        assert torch.equal(state["exp_avg_sq"], resumed_adam[index]["exp_avg_sq"])


def test_cache_hit_does_not_retrain(tmp_path: Path) -> None:
    trained = load_or_train(tiny_run(steps=10), tmp_path, log=None)
    written = trained.path.stat().st_mtime_ns
    cached = load_or_train(tiny_run(steps=10, threads=2, eval_every=3), tmp_path, log=None)
    assert cached.steps_trained == 0 and cached.path == trained.path
    assert trained.path.stat().st_mtime_ns == written
    for name, value in trained.model.state_dict().items():
        assert torch.equal(value, cached.model.state_dict()[name]), name


def test_checkpoint_contents(tmp_path: Path) -> None:
    result = load_or_train(tiny_run(steps=10), tmp_path, log=None)
    # no temporary files left behind (the entry's lock file stays: interbasis.locking)
    assert [p for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == [result.path]
    assert result.path.name.startswith("modadd-seed3-") and result.path.suffix == ".pt"
    checkpoint = load_checkpoint(result.path)
    for key in ("model_config", "data_config", "train_config", "seed", "step", "model_state",
                "optimizer_state", "rng_state", "curve", "train_acc", "test_acc"):
        assert key in checkpoint, key
    assert all(value.dtype == torch.float32 for value in checkpoint["model_state"].values())
    assert checkpoint["test_acc"] == checkpoint["curve"]["test_acc"][-1]


def test_cache_key_ignores_steps_and_runtime_knobs_only(tmp_path: Path) -> None:
    run = tiny_run()

    def path_of(other: ModAddRun) -> Path:
        return checkpoint_path(tmp_path, "modadd", other.seed, other.trajectory())

    knobs = run.train.model_copy(update=dict(steps=99, eval_every=7, save_every=9,
                                             snapshot_every=3))
    assert path_of(replace(run, train=knobs, threads=2, flush_denormal=False)) == path_of(run)
    assert path_of(replace(run, train=run.train.model_copy(update={"lr": 2e-3}))) != path_of(run)
    assert path_of(replace(run, seed=4)) != path_of(run)
    other_split = ModAddDataConfig(name="modadd", p=P, data_seed=1)
    assert path_of(replace(run, data=other_split)) != path_of(run)


def test_checkpoint_past_the_requested_step_is_refused(tmp_path: Path) -> None:
    load_or_train(tiny_run(steps=10), tmp_path, log=None)
    with pytest.raises(CheckpointError, match="at step 10, past the 5 steps"):
        load_or_train(tiny_run(steps=5), tmp_path, log=None)


def test_mismatched_architecture_is_refused(tmp_path: Path) -> None:
    result = load_or_train(tiny_run(steps=5), tmp_path, log=None)
    assert torch.equal(model_from_checkpoint(result.path, TINY_MODEL).unembed.W_U,
                       result.model.unembed.W_U)
    wider = replace(TINY_MODEL, d_model=32, n_heads=4)
    with pytest.raises(CheckpointMismatchError, match=r"model config: d_model=16 \(asked: 32\), "
                                                      r"n_heads=2 \(asked: 4\)"):
        model_from_checkpoint(result.path, wider)


def test_divergence_stops_with_the_step(tmp_path: Path) -> None:
    with pytest.raises(TrainingDiverged, match=r"training diverged: loss \S+ at step \d+"):
        load_or_train(tiny_run(steps=10, lr=1e30), tmp_path, log=None)
    assert not list(tmp_path.glob("*.pt"))  # nothing non-finite was saved


def test_poisoned_weight_names_step_zero() -> None:
    run = tiny_run(steps=5)
    untrained = replace(run, train=run.train.model_copy(update={"steps": 0}))
    checkpoint = train(untrained, log=None).checkpoint
    checkpoint["model_state"]["unembed.W_U"][0, 0] = float("nan")
    with pytest.raises(TrainingDiverged, match="at step 0 "):
        train(run, resume=checkpoint, log=None)


def test_mismatched_data_and_model_are_refused() -> None:
    with pytest.raises(ValueError, match="need d_vocab=12"):
        train(replace(tiny_run(), model=replace(TINY_MODEL, d_vocab=114)), log=None)


def test_cli_trains_then_reports_errors_in_one_line(tmp_path: Path, capsys) -> None:
    directory = str(tmp_path)
    assert main(["--steps", "1", "--threads", "1", "--checkpoint-dir", directory]) == 0
    assert main(["--steps", "0", "--checkpoint-dir", directory]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: checkpoint ") and "\n" not in error
