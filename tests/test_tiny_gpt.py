"""The tiny GPT (E3): folding, hook points, stochastic sources on it, the corpus, the training
cache, and ``family=tiny_gpt debug=tiny`` end to end (in process) on a small text written here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from gpt_tiny import TINY, perturbed_model, tokens
from hydra_runs import composed, lib_and_pca_runs, run_lib_and_pca
from interbasis import pipeline
from interbasis.basis.graph import Batches, _jacobian_gram
from interbasis.basis.sections import capture
from interbasis.config import validate
from interbasis.data.text import CorpusError, load_corpus
from interbasis.models.tiny_gpt import TinyGPT, TinyGPTConfig
from interbasis.training.checkpoint import load_checkpoint
from interbasis.training.tiny_gpt import (
    EVAL_WINDOWS,
    LMTrainConfig,
    TinyGPTRun,
    load_or_train,
    mean_loss,
    model_from_checkpoint,
)

HOOKS = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid", "blocks.1.hook_resid_pre",
         "blocks.1.hook_resid_mid", "blocks.1.hook_resid_post", "ln_final"]
TEXT = ("In the beginning was the word, and the word was with the text; and the text was "
        "short.\n") * 40


def test_folded_model_matches_unfolded_and_carries_the_constant():
    model = perturbed_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = model.fold_bias()
    x = tokens()
    torch.testing.assert_close(folded(x), model(x), atol=1e-10, rtol=0)
    unfolded_acts = capture(model, x, HOOKS)
    folded_acts = capture(folded, x, HOOKS)
    for name in HOOKS:
        assert folded_acts[name].shape == (5, TINY.n_ctx, TINY.d_model + 1)
        assert torch.all(folded_acts[name][..., -1] == 1)
        torch.testing.assert_close(folded_acts[name][..., :-1], unfolded_acts[name],
                                   atol=1e-10, rtol=0)
    assert folded.fold_bias() is folded and not model.is_bias_folded
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_folded_biases_are_weights_of_the_constant():
    """Scaling the constant coordinate at a node layer scales every bias downstream of it: a
    model with zero biases and LayerNorm shifts gives the constant-0 output."""
    model = perturbed_model()
    folded = model.fold_bias()
    no_bias = perturbed_model()
    with torch.no_grad():
        for name, param in no_bias.named_parameters():
            if name.endswith("bias") or name.rsplit(".", 1)[-1].startswith("b_"):
                param.zero_()
    x = tokens()

    def zero_constant(module, args):
        return (torch.cat([args[0][..., :-1], torch.zeros_like(args[0][..., -1:])], -1),)

    handle = folded.blocks[0].hook_resid_pre.register_forward_pre_hook(zero_constant)
    try:
        torch.testing.assert_close(folded(x), no_bias(x), atol=1e-10, rtol=0)
    finally:
        handle.remove()


def test_context_longer_than_the_model_is_one_clear_error():
    with pytest.raises(ValueError, match="exceeds the model's n_ctx 6"):
        TinyGPT(TINY, seed=0)(torch.zeros(1, 7, dtype=torch.long))


def test_stochastic_sources_approach_the_exact_jacobian_gram_on_attention():
    folded = perturbed_model().fold_bias()
    for param in folded.parameters():
        param.requires_grad_(False)
    batches = Batches(tokens(40, seed=3), None, torch.float64, torch.device("cpu"))
    C_next = torch.eye(TINY.d_model + 1, dtype=torch.float64)

    def gram(n_sources, seed=0):
        return _jacobian_gram(folded, batches, "blocks.0.hook_resid_pre",
                              "blocks.0.hook_resid_mid", C_next, [1.0], [1.0], n_sources,
                              torch.Generator().manual_seed(seed))

    exact = gram(None)
    errors = {r: sum((gram(r, seed) - exact).norm().item() for seed in range(3))
              / (3 * exact.norm().item()) for r in (1, 8, 64)}
    assert errors[64] < errors[8] < errors[1]
    assert errors[64] < 0.1


def test_corpus_vocabulary_splits_and_next_character_targets(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT)
    corpus = load_corpus(path, held_out_fraction=0.25, dump_kjv=False)
    assert corpus.vocabulary == "".join(sorted(set(TEXT)))
    assert corpus.decode(corpus.tokens) == TEXT
    assert len(corpus.split("train")) + len(corpus.split("held_out")) == len(TEXT)
    assert corpus.decode(corpus.split("held_out")) == TEXT[int(len(TEXT) * 0.75):]
    inputs, targets = corpus.windows("held_out", context=10, n=7, seed=0)
    assert inputs.shape == targets.shape == (7, 10)
    assert torch.equal(inputs[:, 1:], targets[:, :-1])
    held_out = corpus.decode(corpus.split("held_out"))
    for row, target in zip(inputs, targets):
        assert corpus.decode(row) + corpus.decode(target[-1:]) in held_out


def test_missing_corpus_and_non_utf8_are_one_line_errors(tmp_path):
    with pytest.raises(CorpusError, match="apt-get install -y bible-kjv") as missing:
        load_corpus(tmp_path / "kjv.txt", dump_kjv=False)  # the default corpus's name
    assert "\n" not in str(missing.value)
    with pytest.raises(CorpusError, match="the file is missing") as missing:
        load_corpus(tmp_path / "absent.txt")  # a corpus of one's own is never replaced by KJV
    assert "bible" not in str(missing.value) and not (tmp_path / "absent.txt").exists()
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe" * 100)
    with pytest.raises(CorpusError, match="not UTF-8"):
        load_corpus(tmp_path / "bad.txt", dump_kjv=False)


def test_training_is_cached_and_a_shorter_run_is_a_prefix(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT)
    corpus = load_corpus(path, dump_kjv=False)
    cfg = TinyGPTConfig(d_vocab=corpus.d_vocab, n_ctx=8, d_model=8, n_layers=1, n_heads=2,
                        d_mlp=16)

    def run(steps):
        return TinyGPTRun(model=cfg, fingerprint=corpus.fingerprint, threads=1,
                          train=LMTrainConfig(steps=steps, batch_size=4, warmup_steps=2,
                                              eval_every=5))

    direct = load_or_train(run(12), corpus, tmp_path / "a", log=None)
    assert direct.steps_trained == 12
    load_or_train(run(6), corpus, tmp_path / "b", log=None)
    resumed = load_or_train(run(12), corpus, tmp_path / "b", log=None)
    assert resumed.steps_trained == 6
    for key, value in direct.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    cached = load_or_train(run(12), corpus, tmp_path / "a", log=None)
    assert cached.steps_trained == 0
    assert cached.checkpoint["held_out_loss"] < direct.checkpoint["curve"]["held_out_loss"][0] + 1


@pytest.fixture(scope="module")
def lm_runs(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    text = tmp_path_factory.mktemp("text") / "corpus.txt"
    text.write_text(TEXT)
    return results, run_lib_and_pca("family=tiny_gpt", "debug=tiny", f"data.path={text}",
                                    results=results)


@pytest.mark.integration
def test_debug_tiny_lm_runs_score_cross_entropy(lm_runs):
    results, _ = lm_runs
    runs = lib_and_pca_runs(*lm_runs)
    assert set(runs["model"]) == {"tiny_gpt"}
    row = runs[runs["method"] == "lib"].iloc[0]
    assert row["ablation/n_samples"] == 16 and row["data/context"] == 16
    for key in ("rank/basis/blocks.0.hook_resid_mid", "ablation/edges_required@0.05/total",
                "ablation/k_required@0.05/blocks.0.hook_resid_pre"):
        assert key in runs.columns and row[key] >= 0
    run_dir = next((results / "runs" / "debug").glob("*family=tiny_gpt,method=lib"))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["model"] == "tiny_gpt" and summary["ablation/n_samples"] == 16
    assert len(list((results / "cache" / "checkpoints" / "tiny_gpt").glob("*.pt"))) == 1


@pytest.mark.integration
def test_missing_lm_corpus_stops_with_one_line(tmp_path):
    cfg = validate(composed(["family=tiny_gpt", "debug=tiny",
                             f"data.path={tmp_path / 'absent.txt'}"]))
    with pytest.raises(CorpusError, match=r"data.path: no text file at .*absent.txt \(the file "
                       r"is missing\)") as error:
        pipeline.prepare(cfg)
    assert "\n" not in str(error.value)


@pytest.mark.integration
def test_tiny_gpt_preset_matches_its_description():
    cfg = validate(composed(["experiment=tiny_gpt"]))
    assert cfg.model.family == "tiny_gpt" and cfg.method.n_sources == 1
    assert cfg.model.node_layers[-2:] == ["ln_final", "output"]
    assert cfg.data.context == 64 and cfg.ablation.max_samples is None


@pytest.mark.skipif(shutil.which("bible") is None,
                    reason="Debian's bible-kjv is not installed (apt-get install bible-kjv)")
def test_kjv_is_dumped_as_plain_text(tmp_path):
    corpus = load_corpus(tmp_path / "kjv.txt")
    text = corpus.decode(corpus.tokens[:2000])
    assert "In the beginning God created the heaven and the earth." in text
    assert len(corpus.tokens) > 4_000_000 and corpus.d_vocab < 100


KJV = Path(__file__).resolve().parents[1] / "data" / "kjv.txt"
COMMITTED = sorted((Path(__file__).resolve().parents[1] / "results/checkpoints/tiny_gpt").glob(
    "tiny_gpt-seed*.pt"))


@pytest.mark.skipif(not KJV.is_file() or not COMMITTED,
                    reason="needs data/kjv.txt (apt-get install bible-kjv, then any tiny_gpt "
                    "run writes it) and the committed tiny_gpt checkpoints")
@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_committed_checkpoint_reproduces_its_held_out_loss(path):
    checkpoint = load_checkpoint(path)
    corpus = load_corpus(KJV, checkpoint["trajectory"]["held_out_fraction"])
    assert corpus.fingerprint == checkpoint["trajectory"]["fingerprint"]
    model = model_from_checkpoint(checkpoint)
    windows = corpus.windows("held_out", model.cfg.n_ctx, EVAL_WINDOWS, seed=12345)
    assert mean_loss(model, *windows) == pytest.approx(checkpoint["held_out_loss"], abs=1e-4)
    assert checkpoint["held_out_loss"] < 1.7  # a unigram model of the KJV is at ~3.1 nats
