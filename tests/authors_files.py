"""Test helpers (not a test module): where the LIB authors' files are, the skip mark for tests
that need them, our model as a TransformerLens state dict, and a fixture folder of the authors'
published CSVs is the ``reference`` fixture in conftest.py."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

from interbasis.models.modadd import ModAddTransformer

REPO = Path(__file__).resolve().parents[1]
RIB_DIR = Path(os.environ.get("INTERBASIS_RIB", REPO.parent / "shared" / "data" / "rib_modadd"))
AUTHORS_ACCURACY = {0: 0.99955, 1: 0.99888, 2: 1.0, 3: 0.99978, 4: 1.0}
needs_authors = pytest.mark.skipif(not (RIB_DIR / "seed0").is_dir(),
                                   reason=f"no authors' checkpoints at {RIB_DIR}")


def tl_state_of(model: ModAddTransformer) -> dict[str, torch.Tensor]:
    """A HookedTransformer-style state dict of our model (TL names and its two buffers)."""
    state = {("pos_embed.W_pos" if k == "embed.W_pos" else k): v.clone()
             for k, v in model.state_dict().items()}
    n_ctx = model.cfg.n_ctx
    state["blocks.0.attn.mask"] = torch.ones(n_ctx, n_ctx, dtype=torch.bool).tril()
    state["blocks.0.attn.IGNORE"] = torch.tensor(-math.inf)
    return state
