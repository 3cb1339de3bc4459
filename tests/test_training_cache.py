"""Where a run's model lives (training/cache.py): a committed checkpoint at the target is read in
place, one short of it is copied and resumed in the cache, and one past it is left alone while
the run trains afresh in the cache (a model cannot be rewound)."""

from __future__ import annotations

from types import SimpleNamespace

from interbasis.models.modadd import ModAddTransformerConfig
from interbasis.training import loop
from interbasis.training.cache import model_cache_dir, sha256, write_manifest
from interbasis.training.checkpoint import load_checkpoint
from interbasis.training.modadd import ModAddDataConfig, ModAddRun, ModAddTrainConfig

MODEL = ModAddTransformerConfig(d_vocab=8, d_model=8, n_heads=2, d_head=4, d_mlp=16)


def tiny_run(steps: int) -> ModAddRun:
    return ModAddRun(seed=1, model=MODEL, data=ModAddDataConfig(name="modadd", p=7),
                     train=ModAddTrainConfig(steps=steps, eval_every=10, save_every=10),
                     threads=1)


def committed_store(tmp_path, steps: int) -> SimpleNamespace:
    """paths.checkpoints holding one committed (manifest-listed) model at ``steps``."""
    paths = SimpleNamespace(checkpoints=str(tmp_path / "checkpoints"),
                            cache=str(tmp_path / "cache"))
    loop.load_or_train(tiny_run(steps), tmp_path / "checkpoints" / "modadd", log=None)
    write_manifest(tmp_path / "checkpoints")
    return paths


def where(paths, run: ModAddRun):
    return model_cache_dir(paths, run.family, run.seed, run.trajectory(), run.total)


def test_a_committed_model_past_the_target_is_not_copied_and_the_run_trains_afresh(tmp_path):
    paths = committed_store(tmp_path, steps=40)
    committed = next((tmp_path / "checkpoints" / "modadd").glob("*.pt"))
    before = sha256(committed)
    assert where(paths, tiny_run(40)) == tmp_path / "checkpoints" / "modadd"  # read in place

    shorter = tiny_run(20)  # the same trajectory (the step count is no part of the key)
    assert where(paths, shorter) == tmp_path / "cache" / "modadd"
    assert not (tmp_path / "cache").exists()  # nothing copied
    result = loop.cached_model(paths, shorter, progress=False)
    assert result.steps_trained == 20 and result.path == tmp_path / "cache" / "modadd" / \
        committed.name
    assert load_checkpoint(result.path)["step"] == 20
    # a prefix of the committed run, retrained: the same updates at the same thread count
    fresh = loop.train(shorter, None, None, log=None)
    for key, value in fresh.model.state_dict().items():
        assert (value == result.model.state_dict()[key]).all(), key
    assert sha256(committed) == before
    # the cached shorter run is now the entry of that target (and resumed to longer ones)
    assert loop.cached_model(paths, shorter, progress=False).steps_trained == 0


def test_a_committed_model_short_of_the_target_is_copied_and_resumed(tmp_path):
    paths = committed_store(tmp_path, steps=20)
    committed = next((tmp_path / "checkpoints" / "modadd").glob("*.pt"))
    before = sha256(committed)
    result = loop.cached_model(paths, tiny_run(30), progress=False)
    assert result.steps_trained == 10 and result.path.parent == tmp_path / "cache" / "modadd"
    assert sha256(committed) == before and load_checkpoint(result.path)["step"] == 30
