"""The paper's LM presets (experiment=gpt2_paper, tinystories_paper, pythia_14m) composed as they
are and run end to end with overrides that point them at a tiny randomly initialised model of
their architecture saved to disk and a small local text (the preset's own node-layer kinds, on
two blocks); the separate Gram set (data.gram_samples); the datasets-library corpus offline."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from interbasis import build_graph
from interbasis.data import text
from interbasis.estimate import compose_run
from interbasis.results import load_runs

transformers = pytest.importorskip("transformers", reason="the lm extra (transformers) is not "
                                   "installed: pip install -e '.[lm]'")

TEXT = "Once upon a time there was a little model that read a short story every day. " * 40
SMALL = dict(vocab_size=40, bos_token_id=0, eos_token_id=1)
PRESETS = {  # preset: (architecture of the real model, tiny model class and config)
    "gpt2_paper": ("gpt2", lambda: (transformers.GPT2LMHeadModel, transformers.GPT2Config(
        n_positions=16, n_embd=8, n_layer=2, n_head=2, **SMALL))),
    "tinystories_paper": ("gpt_neo", lambda: (transformers.GPTNeoForCausalLM,
                                              transformers.GPTNeoConfig(
        hidden_size=8, num_layers=2, num_heads=2, attention_types=[[["global", "local"], 1]],
        max_position_embeddings=16, window_size=4, **SMALL))),
    "pythia_14m": ("gpt_neox", lambda: (transformers.GPTNeoXForCausalLM,
                                        transformers.GPTNeoXConfig(
        hidden_size=8, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=16, use_parallel_residual=True, **SMALL))),
}


def save_tiny_model(folder, preset: str) -> None:
    """A character tokenizer and a random model of the preset's architecture, saved to folder."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    vocabulary = {char: index for index, char in enumerate(["[UNK]", *sorted(set(TEXT))])}
    tokenizer = Tokenizer(models.WordLevel(vocabulary, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("."), "isolated")
    transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer,
                                         unk_token="[UNK]").save_pretrained(folder)
    model_class, config = PRESETS[preset][1]()
    torch.manual_seed(0)
    model_class(config).save_pretrained(folder)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_preset_holds_the_paper_settings(preset):
    cfg = compose_run([f"experiment={preset}"])
    assert cfg.model.family == "hf_lm" and cfg.method.n_sources == 1
    assert cfg.data.dataset is not None and cfg.data.gram_samples > cfg.data.basis_samples
    layers = cfg.model.node_layers
    assert layers[0] == "blocks.0.hook_resid_pre" and layers[-1] == "hook_resid_final"
    has_mid = preset != "pythia_14m"  # Pythia's parallel blocks have no stream between
    assert ("blocks.0.hook_resid_mid" in layers) == has_mid
    if preset == "gpt2_paper":
        assert (cfg.model.name, cfg.data.context, cfg.data.basis_samples,
                cfg.data.gram_samples) == ("gpt2", 1024, 500, 50_000)
        assert len(layers) == 2 * 12 + 1
    if preset == "tinystories_paper":
        assert (cfg.model.name, cfg.data.context) == ("roneneldan/TinyStories-1M", 200)
        assert len(layers) == 2 * 8 + 1


# whole runs of each architecture, in process (a second or two each once transformers is loaded;
# they were slow-marked while each was a subprocess)
@pytest.mark.integration
@pytest.mark.parametrize("preset", list(PRESETS))
def test_preset_runs_on_a_tiny_model_of_its_architecture(preset, tmp_path, caplog):
    from hydra_runs import run_in_process

    folder = tmp_path / "model"
    save_tiny_model(folder, preset)
    corpus = tmp_path / "local_copy.txt"  # the local copy data.dataset would have written
    corpus.write_text(TEXT)
    mid = preset != "pythia_14m"
    layers = ",".join(f"blocks.{i}.hook_resid_{kind}" for i in range(2)
                      for kind in (("pre", "mid") if mid else ("pre",)))
    caplog.set_level(logging.INFO)
    out = run_in_process(f"experiment={preset}", f"model.name={folder}", f"data.path={corpus}",
                         "data.context=8", "data.basis_samples=4", "data.gram_samples=10",
                         "data.ablation_samples=2", "logger=none", "threads=1",
                         f"model.node_layers=[{layers},hook_resid_final,output]",
                         results=tmp_path / "results")
    assert out.returncode == 0, out.stderr[-2000:]
    # the paper's long builds print the cost estimate before the build (estimate: true)
    assert ("estimate: predicted: build" in caplog.text) == (preset != "pythia_14m")
    row = load_runs(tmp_path / "results" / "runs").iloc[0]
    assert row["experiment"] == preset and row["data/gram_samples"] == 10
    assert row["ablation/edges_required@0.05/total"] >= 0


def test_means_and_grams_come_from_the_gram_inputs():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).double()
    basis_data, gram_data = torch.randn(20, 4), 2 + torch.randn(50, 4)
    names = ["0", "2", "output"]
    split = build_graph(model, basis_data, names, method="pca", gram_inputs=gram_data)
    on_grams = build_graph(model, gram_data, names, method="pca")
    on_basis = build_graph(model, basis_data, names, method="pca")
    for mixed, gram, basis in zip(split.layers, on_grams.layers, on_basis.layers, strict=True):
        torch.testing.assert_close(mixed.mean, gram.mean)
        torch.testing.assert_close(mixed.gram_eigenvalues, gram.gram_eigenvalues)
        assert not torch.allclose(mixed.mean, basis.mean)
    # PCA's basis is the Gram's; its edges are still taken over the basis data
    torch.testing.assert_close(split.layers[0].C.abs(), on_grams.layers[0].C.abs())
    assert not torch.allclose(split.edges[0], on_grams.edges[0])


def test_a_named_dataset_offline_is_one_line(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach the Hugging Face Hub\nsecond line")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    path = tmp_path / "data" / "tinystories.txt"
    with pytest.raises(text.CorpusError) as error:
        text.dataset_text(path, "roneneldan/TinyStories", 10)
    message = str(error.value)
    assert "\n" not in message and "roneneldan/TinyStories" in message and str(path) in message
    assert not path.exists() and not path.with_suffix(".txt.tmp").exists()


def test_a_named_dataset_is_written_once_and_read_from_its_copy(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake(name, split, streaming):
        calls.append(name)
        return iter([{"text": f"story {i} " * 20} for i in range(100)])

    monkeypatch.setattr(datasets, "load_dataset", fake)
    path = tmp_path / "copy.txt"
    _, first = text.dataset_text(path, "some/stories", 3)
    _, again = text.dataset_text(path, "some/stories", 3)
    assert first == again and calls == ["some/stories"]
    assert first.count("story") == 60 and "story 3 " not in first
