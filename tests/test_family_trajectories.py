"""The cache key (``recipe.trajectory()``) of each family's default config and presets is what it
was before the recipes read the typed train section (hashes computed on main's code at
479d8ec): a change here would orphan the committed checkpoints and every cached model.

Vision and the tiny GPT key on their data's fingerprint; a fixed stand-in is used for it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from hydra_runs import composed
from interbasis.config import validate
from interbasis.training import modadd, poly_toy, tiny_gpt, vision
from interbasis.training.checkpoint import trajectory_hash

pytestmark = pytest.mark.integration  # composes configs

PINNED = {
    ("modadd", ()): "39a07fd73256",  # results/checkpoints/modadd/modadd-seed0-39a07fd73256.pt
    ("modadd", ("experiment=modadd_paper",)): "39a07fd73256",
    ("modadd", ("experiment=modadd_degeneracy",)): "b797e85c96fa",
    ("modadd", ("debug=tiny",)): "c8b6c1b5dee0",
    ("vision", ("family=vision",)): "32ff12273561",
    ("vision", ("experiment=fashion_cnn",)): "1607d604f2fd",
    ("vision", ("experiment=cifar_paper",)): "487abc27019e",
    ("vision", ("family=vision", "debug=tiny")): "1c546e35a06a",
    ("tiny_gpt", ("family=tiny_gpt",)): "a404d7ca9905",
    ("tiny_gpt", ("family=tiny_gpt", "debug=tiny")): "d1f12bd90aed",
    ("poly_toy", ("family=poly_toy",)): "2efd827951bc",
    ("poly_toy", ("family=poly_toy", "debug=tiny")): "110d17854768",
}


def recipe(family: str, overrides: tuple[str, ...]):
    cfg = validate(composed(list(overrides)))
    if family == "modadd":
        return modadd.run_from_config(cfg)
    if family == "vision":
        images = SimpleNamespace(name=cfg.data.name, fingerprint="f" * 16, n_features=784,
                                 classes=tuple(range(10)))
        return vision.run_from_config(cfg, images)
    if family == "tiny_gpt":
        return tiny_gpt.run_from_config(cfg, SimpleNamespace(d_vocab=65, fingerprint="t" * 16))
    return poly_toy.PolyToyRun(n=cfg.model.n, m=cfg.model.m, seed=cfg.seed, train=cfg.train,
                               threads=cfg.threads)


@pytest.mark.parametrize(("family", "overrides"), list(PINNED), ids=lambda v: str(v))
def test_the_cache_key_of_every_default_config_is_unchanged(family, overrides):
    run = recipe(family, overrides)
    assert run.family == family
    assert trajectory_hash(run.trajectory()) == PINNED[family, overrides]


def test_runtime_knobs_stay_out_of_the_key():
    base = recipe("vision", ("family=vision",))
    longer = recipe("vision", ("family=vision", "train.epochs=3", "threads=1"))
    assert base.trajectory() == longer.trajectory() and longer.total == 3
    gpt = recipe("tiny_gpt", ("family=tiny_gpt", "train.steps=10", "train.eval_every=5"))
    assert trajectory_hash(gpt.trajectory()) == PINNED["tiny_gpt", ("family=tiny_gpt",)]
    assert (gpt.total, gpt.eval_every) == (10, 5)
