"""The tokens each language-model feature is largest on (top_tokens.csv).

    python -m interbasis.metrics.top_tokens results/runs/tiny_gpt/method=lib,seed=0 ...

For every node layer with a position axis, the features f = x C of the run's stored basis on the
run's own basis inputs (computed as ``interbasis.metrics.positions`` does), and per feature its
top tokens by this rule:

    score(t) = mean of |f| over the positions whose input token is t

ranked over the tokens seen often enough in the basis inputs: at least ``MIN_COUNT`` (5) times
and at least ``MIN_SHARE`` (0.5%) of all positions (21 of the tiny GPT's 64 windows x 64), so
that a token met a handful of times cannot top a feature by chance; the ``TOP`` (5) highest are
kept (fewer when fewer tokens are seen that often). A feature that is an indicator of one token
has that token first. Mean |f| still leans to the rarer of the kept tokens (their embeddings lie
further from the mean): ``--min-count`` raises the floor. Tokens are decoded: a character of the
tiny GPT's vocabulary, the tokenizer's string of one id for hf_lm.

Written to ``top_tokens.csv`` in the run folder (columns layer, feature, rank (1 = highest),
token, score, count), beside the run's other files; nothing already stored changes. The results
browser reads it (:func:`read_table`).
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor

from interbasis.metrics.positions import feature_layers, layer_features
from interbasis.results import atomic_write_text
from interbasis.results.stored import stored_graph, stored_run_config

TOP_TOKENS_FILE = "top_tokens.csv"
MIN_COUNT = 5
MIN_SHARE = 0.005
TOP = 5
COLUMNS = ["layer", "feature", "rank", "token", "score", "count"]


class TokenMagnitudes:
    """Sums of |f| per token over positions, accumulated batch by batch.

    ``tokens``: every token id the inputs hold (``inputs.unique()``); sums are kept for those
    alone, so a 50k vocabulary costs only the tokens seen."""

    def __init__(self, tokens: Tensor) -> None:
        self.tokens = tokens.flatten().unique()
        self.sums: Tensor | None = None  # (n_tokens, r)
        self.counts = torch.zeros(len(self.tokens), dtype=torch.long)

    def update(self, inputs: Tensor, features: Tensor) -> None:
        """``inputs``: (windows, positions) token ids; ``features``: (windows, positions, r)."""
        if features.ndim != 3 or features.shape[:2] != inputs.shape:
            raise ValueError(f"features {tuple(features.shape)} do not match inputs "
                             f"{tuple(inputs.shape)} (windows, positions, r)")
        ids = inputs.flatten()
        index = torch.searchsorted(self.tokens, ids)
        if (index >= len(self.tokens)).any() or (self.tokens[index.clamp_max(
                len(self.tokens) - 1)] != ids).any():
            raise ValueError("inputs hold a token that TokenMagnitudes was not given")
        values = features.reshape(len(ids), -1).double().abs()
        if self.sums is None:
            self.sums = torch.zeros(len(self.tokens), values.shape[1], dtype=torch.float64)
        self.sums.index_add_(0, index, values)
        self.counts += torch.bincount(index, minlength=len(self.tokens))

    def top(self, k: int = TOP, min_count: int = MIN_COUNT) -> tuple[Tensor, Tensor, Tensor]:
        """(token ids, scores, counts), each (r, k') with k' = min(k, tokens seen min_count
        times): the tokens with the largest mean |f| per feature, highest first."""
        if self.sums is None:
            raise ValueError("no features were added")
        kept = self.counts >= min_count
        means = self.sums[kept] / self.counts[kept, None]  # (kept tokens, r)
        k = min(k, int(kept.sum()))
        scores, order = means.T.topk(k, dim=1)
        return self.tokens[kept][order], scores, self.counts[kept][order]


def count_floor(positions: int) -> int:
    """How often a token must be seen among ``positions`` to rank: MIN_COUNT or MIN_SHARE."""
    return max(MIN_COUNT, math.ceil(MIN_SHARE * positions))


def top_tokens(model, graph, inputs: Tensor, decode: Callable[[int], str], k: int = TOP,
               min_count: int | None = None, batch_size: int = 16) -> pd.DataFrame:
    """The table for every node layer of ``graph`` with a position axis (and a constant);
    ``min_count`` None: the :func:`count_floor` of the inputs' positions."""
    floor = count_floor(inputs.numel()) if min_count is None else min_count
    layers = feature_layers(graph)
    magnitudes = {layer.name: TokenMagnitudes(inputs) for layer in layers}
    for batch, features in layer_features(model, graph, inputs, batch_size):
        for name, values in features.items():
            magnitudes[name].update(batch, values)
    rows = []
    for layer in layers:
        ids, scores, counts = magnitudes[layer.name].top(k, floor)
        for feature in range(1, ids.shape[0]):  # feature 0 is the constant
            for rank in range(ids.shape[1]):
                rows.append((layer.name, feature, rank + 1, decode(int(ids[feature, rank])),
                             float(scores[feature, rank]), int(counts[feature, rank])))
    return pd.DataFrame(rows, columns=COLUMNS)


def write_table(path: Path, table: pd.DataFrame) -> None:
    """``table`` as ``path/top_tokens.csv``, atomically; text quoted, so that a token of spaces,
    a newline or "NA" reads back as itself (:func:`read_table`)."""
    rounded = table[COLUMNS].assign(score=[float(f"{x:.6g}") for x in table["score"]])
    atomic_write_text(Path(path) / TOP_TOKENS_FILE, rounded.to_csv(
        index=False, quoting=csv.QUOTE_NONNUMERIC))


def read_table(path: Path) -> pd.DataFrame:
    """``path/top_tokens.csv`` with every token a string, exactly as written."""
    table = pd.read_csv(Path(path) / TOP_TOKENS_FILE, dtype={"layer": str, "token": str},
                        keep_default_na=False)
    missing = [column for column in COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(f"{Path(path) / TOP_TOKENS_FILE}: no column(s) {', '.join(missing)}")
    return table


def tokens_by_feature(path: Path, n: int) -> dict[tuple[str, int], list[str]]:
    """(layer, feature) -> its first ``n`` top tokens in rank order, from ``path/top_tokens.csv``
    (the labels of the results browser and of figure 6b)."""
    return {(str(layer), int(feature)): list(rows.sort_values("rank")["token"].head(n))
            for (layer, feature), rows in read_table(path).groupby(["layer", "feature"],
                                                                   sort=False)}


def token_decoder(cfg) -> Callable[[int], str]:
    """id -> text for the run's tokens: the tiny GPT's characters, or the hf_lm tokenizer's."""
    family = cfg.model.family
    if family == "tiny_gpt":
        from interbasis.data.text import load_corpus

        vocabulary = load_corpus(cfg.data.path, cfg.data.held_out_fraction,
                                 dump_kjv=cfg.data.dump_kjv).vocabulary
        return vocabulary.__getitem__
    if family == "hf_lm":
        from transformers import AutoTokenizer

        from interbasis.training.hf_lm import resolve

        name, gguf_file = resolve(cfg.model.name, cfg.model.gguf_file)
        kwargs = {} if gguf_file is None else {"gguf_file": gguf_file}
        tokenizer = AutoTokenizer.from_pretrained(name, **kwargs)
        return lambda token: str(tokenizer.decode([token]))
    raise ValueError(f"model family {family!r} has no tokens (tiny_gpt and hf_lm do)")


def write_run(path: Path, k: int = TOP, min_count: int | None = None) -> pd.DataFrame:
    """Compute and write ``top_tokens.csv`` for one complete language-model run."""
    from interbasis import pipeline

    _, cfg = stored_run_config(path)
    decode = token_decoder(cfg)
    graph = stored_graph(path)
    prepared = pipeline.prepare(cfg)
    table = top_tokens(prepared.model, graph, prepared.basis_inputs, decode, k, min_count)
    write_table(Path(path), table)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="language-model run folders")
    parser.add_argument("--top", type=int, default=TOP, help="tokens kept per feature")
    parser.add_argument("--min-count", type=int, default=None,
                        help=f"times a token must be seen to rank (default: {MIN_COUNT} or "
                        f"{MIN_SHARE * 100:g}%% of the positions, whichever is more)")
    args = parser.parse_args(argv)
    if args.top < 1 or (args.min_count is not None and args.min_count < 1):
        parser.error("--top and --min-count must be at least 1")
    for path in args.runs:
        table = write_run(path, args.top, args.min_count)
        first = table[table["rank"] == 1]
        common = first.groupby("layer", sort=False)["token"].agg(
            lambda tokens: tokens.value_counts().index[0])
        print(f"{path}: {len(first)} features; most common top token " + ", ".join(
            f"{layer} {token!r}" for layer, token in common.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
