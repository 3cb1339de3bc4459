"""A randomly initialised GPT-Neo of TinyStories-1M's shape and a generated text, saved to disk,
so that ``experiment=tinystories_paper`` can be estimated where nothing can be downloaded (the
GPU check, benchmarks/gpu_check.sh):

    python benchmarks/random_tinystories.py DIR            # the real shape
    python benchmarks/random_tinystories.py DIR --small    # d 16, 2 heads, 64 positions: seconds
    python -m interbasis.estimate experiment=tinystories_paper model.name=DIR \\
        data.path=DIR/text.txt device=cuda logger=none

The shape is roneneldan/TinyStories-1M's config: 8 blocks alternating global and local attention
(a 256-token window), d_model 64, 16 heads, 2,048 positions, a 50,257-token vocabulary; --small
keeps the 8 blocks (the preset's node layers) and the vocabulary. The tokenizer is one token per
character (the real one, GPT-2's BPE, needs a download); the cost per token is the model's, not
the tokenizer's, so the estimate's times stand for the real model's.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

WORDS = ["once", "upon", "a", "time", "there", "was", "little", "girl", "boy", "dog", "cat", "who",
         "liked", "to", "play", "run", "jump", "in", "the", "park", "garden", "sun", "rain", "and",
         "her", "his", "friend", "mom", "said", "happy", "sad", "big", "red", "ball", "tree"]


def story_text(n_chars: int, seed: int = 0) -> str:
    """Sentences of random words from a small vocabulary, on one line, about n_chars long."""
    rng = random.Random(seed)
    sentences, length = [], 0
    while length < n_chars:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12)))
        sentences.append(sentence.capitalize() + ".")
        length += len(sentences[-1]) + 1
    return " ".join(sentences)


def save(folder: Path, small: bool = False) -> None:
    """The character tokenizer, the random model (float32, seed 0) and text.txt in folder."""
    import torch
    import transformers
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    text = story_text(20_000 if small else 400_000)
    vocabulary = {char: index for index, char in enumerate(["[UNK]", *sorted(set(text))])}
    tokenizer = Tokenizer(models.WordLevel(vocabulary, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("."), "isolated")
    transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer,
                                         unk_token="[UNK]").save_pretrained(folder)
    hidden, heads, positions, window = (16, 2, 64, 4) if small else (64, 16, 2048, 256)
    config = transformers.GPTNeoConfig(vocab_size=50257, num_layers=8, hidden_size=hidden,
                                       num_heads=heads, max_position_embeddings=positions,
                                       window_size=window,
                                       attention_types=[[["global", "local"], 4]])
    torch.manual_seed(0)
    transformers.GPTNeoForCausalLM(config).save_pretrained(folder)
    (folder / "text.txt").write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--small", action="store_true", help="tiny widths (the --cpu check)")
    args = parser.parse_args(argv)
    args.folder.mkdir(parents=True, exist_ok=True)
    save(args.folder, args.small)
    print(f"saved a random {'small ' if args.small else ''}TinyStories-1M-shaped GPT-Neo and "
          f"text.txt to {args.folder}")


if __name__ == "__main__":
    main()
