"""A character-level text corpus for the language-model family (docs/experiments.md E3).

The default corpus is the King James Bible from Debian (``apt-get install bible-kjv``): its text is
stored compressed, so the first run dumps it once with the package's ``bible`` program into
``data.path`` (about 4.3 MB of plain text); any UTF-8 text file works instead (``data.path=...``).

Tokens are characters; the vocabulary is the sorted set of characters of the whole file, so it is a
function of the file alone. The last ``held_out_fraction`` of the text is held out (ablations are
scored there); windows of ``context + 1`` characters give (inputs, next-character targets).

    corpus = load_corpus("data/kjv.txt")
    tokens, targets = corpus.windows("held_out", context=64, n=256, seed=0)

Pretrained LMs (training/hf_lm.py) can name a ``datasets``-library corpus instead
(:func:`dataset_text`, ``data.dataset=roneneldan/TinyStories``): online, its first documents are
written once to ``data.path`` as plain text, which every later run (and an offline machine with a
copy of that file) reads.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

KJV_FILE = "kjv.txt"  # the default data.path's name: only a missing file of this name is dumped
KJV_RANGE = "Gen1:1-Rev22:21"  # the whole text, as the bible(1) manual page says
KJV_MIN_CHARS = 4_000_000  # a complete dump is ~4.3 MB; less means the dump failed part-way
MIN_CHARS = 400_000  # of each part of an LM's text, tokenized (lm_text_parts)
CHARS_PER_TOKEN = 8  # generous: BPE tokens of English average ~4 characters


class CorpusError(FileNotFoundError):
    """The corpus file is missing or unusable; the message is one line saying what to do."""


@dataclass(frozen=True)
class TextCorpus:
    """The text as token ids, its vocabulary and a fingerprint (for the checkpoint cache)."""

    tokens: Tensor  # (n_chars,) long
    vocabulary: str  # token id -> character
    fingerprint: str
    held_out_fraction: float

    @property
    def d_vocab(self) -> int:
        return len(self.vocabulary)

    def split(self, name: str) -> Tensor:
        """The train part (the first 1 - held_out_fraction of the text) or the held-out part."""
        if name not in ("train", "held_out", "test"):
            raise ValueError(f"unknown split {name!r}; choose train or held_out")
        cut = int(len(self.tokens) * (1 - self.held_out_fraction))
        return self.tokens[:cut] if name == "train" else self.tokens[cut:]

    def windows(self, split: str, context: int, n: int, seed: int) -> tuple[Tensor, Tensor]:
        """n windows at random offsets of one split: (inputs (n, P), next tokens (n, P))."""
        text = self.split(split)
        if len(text) <= context + 1:
            raise ValueError(f"the {split} split has {len(text)} characters, fewer than one "
                             f"window of {context + 1}")
        generator = torch.Generator().manual_seed(seed)
        starts = torch.randint(0, len(text) - context - 1, (n,), generator=generator)
        rows = text[starts[:, None] + torch.arange(context + 1)]
        return rows[:, :-1], rows[:, 1:]

    def decode(self, tokens: Tensor) -> str:
        return "".join(self.vocabulary[i] for i in tokens.tolist())


def load_corpus(path: str | Path, held_out_fraction: float = 0.1,
                dump_kjv: bool = True) -> TextCorpus:
    """Read a UTF-8 text file as a character corpus; dump the KJV there first if it is missing
    and ``dump_kjv`` is set and Debian's ``bible`` program is installed."""
    raw, text = read_text(path, dump_kjv)
    vocabulary = "".join(sorted(set(text)))
    lookup = {char: index for index, char in enumerate(vocabulary)}
    tokens = torch.tensor([lookup[char] for char in text], dtype=torch.long)
    return TextCorpus(tokens=tokens, vocabulary=vocabulary,
                      fingerprint=hashlib.sha256(raw).hexdigest()[:12],
                      held_out_fraction=held_out_fraction)


def read_text(path: str | Path, dump_kjv: bool = True) -> tuple[bytes, str]:
    """The file's bytes and text, after dumping the KJV there if asked and possible."""
    path = Path(path)
    # Only the KJV's own file name is filled in: a corpus of the user's that is missing must say
    # so, not turn into the Bible.
    if not path.is_file() and dump_kjv and path.name == KJV_FILE:
        dump_kjv_text(path)
    if not path.is_file() and path.name != KJV_FILE:
        raise CorpusError(f"data.path: no text file at {path} (the file is missing); give an "
                          "existing UTF-8 text file")
    if not path.is_file():
        raise CorpusError(f"no text corpus at {path}: apt-get update && apt-get install -y "
                          "bible-kjv (the King James Bible is then written there on first use) "
                          "or set data.path=<a UTF-8 text file>")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CorpusError(f"corpus {path} is not UTF-8 text ({error.reason} at byte "
                          f"{error.start})") from None
    if len(text) < 100:
        raise CorpusError(f"corpus {path} has only {len(text)} characters; give a real text")
    return raw, text


def dump_kjv_text(path: Path) -> bool:
    """Write the whole KJV with Debian's ``bible`` program; False when it is not installed."""
    program = shutil.which("bible")
    if program is None:
        return False
    result = subprocess.run([program, KJV_RANGE], capture_output=True, check=False, timeout=600)
    if result.returncode != 0 or len(result.stdout) < KJV_MIN_CHARS:
        raise CorpusError(f"'bible {KJV_RANGE}' failed (exit {result.returncode}, "
                          f"{len(result.stdout)} bytes): {result.stderr.decode()[:200]}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(result.stdout)
    tmp.replace(path)  # a dump killed mid-write never leaves a truncated corpus behind
    return True


def dataset_text(path: str | Path, dataset: str, documents: int) -> tuple[bytes, str]:
    """The text of ``dataset``'s first ``documents`` train documents, cached at ``path``.

    A file already at ``path`` is read as is (the local copy); otherwise the ``datasets`` library
    streams the documents (online only) and they are written there, one blank line between
    documents, atomically.
    """
    path = Path(path)
    if not path.is_file():
        _download_text(path, dataset, documents)
    return read_text(path, dump_kjv=False)


def _download_text(path: Path, dataset: str, documents: int) -> None:
    hint = (f"data.dataset={dataset}: no local copy at {path} and the datasets library cannot "
            f"fetch it here; online, run the same command once (it writes the first {documents} "
            f"documents there) or put a UTF-8 text of the corpus at that path (data.path=...)")
    try:
        import datasets
        stream = datasets.load_dataset(dataset, split="train", streaming=True)
        texts = []
        for index, row in enumerate(stream):
            if index >= documents:
                break
            texts.append(row["text"])
    except Exception as error:  # offline, unknown name, no text column: all the same advice
        reason = (str(error).splitlines() or [""])[0][:100]
        raise CorpusError(f"{hint} ({type(error).__name__}: {reason})") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("\n\n".join(texts), encoding="utf-8")
    tmp.replace(path)  # an interrupted download never leaves a partial corpus that looks whole


def lm_text_parts(data) -> dict[str, str]:
    """The train and held-out text of a pretrained-LM run (``data``: its TextDataConfig), cut to
    what its windows need: tokenizing a whole large corpus would cost more than the windows'
    basis, so each part keeps CHARS_PER_TOKEN characters per token of every window drawn (at
    least MIN_CHARS)."""
    if getattr(data, "dataset", None) is not None:
        _, text = dataset_text(data.path, data.dataset, data.dataset_documents)
    else:
        _, text = read_text(data.path, data.dump_kjv)
    cut = int(len(text) * (1 - data.held_out_fraction))
    windows = data.basis_samples + (getattr(data, "gram_samples", None) or 0) + \
        data.ablation_samples
    limit = max(MIN_CHARS, CHARS_PER_TOKEN * (data.context + 1) * windows)
    return {"train": text[:cut][:limit], "held_out": text[cut:][:limit]}
