"""Fourier purity of modular-addition features (docs/experiments.md E1; figure 4, and figure
3's labels).

Each basis feature of a node layer is a function of the two inputs (a, b); over the full p x p grid
its 2-D FFT says which Fourier modes it is made of. A feature's **purity** is the share of its power
(the constant offset, the (0, 0) mode, left out) held by its top Fourier term. A term is a
frequency pair (k_a, k_b) together with its conjugate (-k_a, -k_b): for a real feature the two
always carry the same power and together make one cos/sin mode, so a pure cos(2 pi k a / p + phi)
has purity 1 whatever its phase.

Layers with several positions (the residual stream before attention holds a, b and "=") give one
grid per position; their power spectra are added, because a feature's value is the whole vector
over positions. A feature that reads the same frequency k from a (position 0) and from b
(position 1) therefore splits its power between the terms k*a and k*b: its purity is at most 1/2
there.

``key_frequency`` is the k whose terms (k*a, k*b, k*(a+b), k*(a-b), i.e. every component in
{0, +-k}) hold the most power, and ``key_frequency_share`` that power's share: the "key frequency"
notion of the grokking literature, robust to a feature mixing a and b at one frequency.

    tables = modadd_analysis(model, graph, p=113)   # {"fourier": DataFrame}, one row per feature
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from torch import nn

from interbasis.basis import Graph, features_by_layer
from interbasis.data.modadd import all_pairs

FOURIER_TABLE = "fourier"
COLUMNS = ["layer", "feature", "constant", "power", "purity", "k_a", "k_b", "term",
           "key_frequency", "key_frequency_share"]


def signed_frequency(k: np.ndarray | int, p: int) -> np.ndarray:
    """Frequencies 0..p-1 as signed integers in (-p/2, p/2]."""
    k = np.asarray(k) % p
    return np.where(k > p // 2, k - p, k)


def canonical_term(k_a: int, k_b: int, p: int) -> tuple[int, int]:
    """One representative of the term {(k_a, k_b), (-k_a, -k_b)}: first non-zero entry positive."""
    a, b = (int(x) for x in signed_frequency(np.array([k_a, k_b]), p))
    if a < 0 or (a == 0 and b < 0):
        a, b = -a, -b
    # p/2 and -p/2 are the same frequency for even p: keep the non-negative spelling
    return (a, abs(b) if 2 * abs(b) == p else b)


def term_label(k_a: int, k_b: int) -> str:
    """A short name: "14a", "14b", "14(a+b)", "14(a-b)", or "14a+3b" for a mixed term."""
    if k_a == 0 and k_b == 0:
        return "const"
    if k_b == 0:
        return f"{k_a}a"
    if k_a == 0:
        return f"{k_b}b"
    if k_a == k_b:
        return f"{k_a}(a+b)"
    if k_a == -k_b:
        return f"{k_a}(a-b)"
    return f"{k_a}a{k_b:+d}b"


def fourier_purity(grids: np.ndarray) -> pd.DataFrame:
    """Purity of each feature from its values on the full input grid.

    ``grids`` has shape (p, p, n_positions, n_features): ``grids[a, b, pos, j]`` is feature j at
    position pos for the input (a, b). Returns one row per feature with ``power`` (total power
    without the (0, 0) mode), ``purity``, the top term (``k_a``, ``k_b``, ``term``),
    ``key_frequency`` and ``key_frequency_share``; NaN / "const" for a feature with no power.
    """
    if grids.ndim != 4 or grids.shape[0] != grids.shape[1]:
        raise ValueError(f"grids must have shape (p, p, n_positions, n_features), "
                         f"got {grids.shape}")
    p = grids.shape[0]
    centred = grids - grids.mean(axis=(0, 1), keepdims=True)  # the (0, 0) mode is an offset
    power = (np.abs(np.fft.fft2(centred, axes=(0, 1))) ** 2).sum(axis=2)  # (p, p, r)
    total = power.sum(axis=(0, 1))

    # term power: a mode plus its conjugate partner (each term appears twice in the full grid)
    neg = (-np.arange(p)) % p
    partner = power[neg][:, neg]
    self_conjugate = (np.arange(p)[:, None] == neg[:, None]) & (np.arange(p)[None] == neg[None])
    term_power = np.where(self_conjugate[..., None], power, power + partner)
    flat_top = term_power.reshape(p * p, -1).argmax(axis=0)
    top_power = term_power.reshape(p * p, -1)[flat_top, np.arange(power.shape[2])]

    # key frequency of each mode: k when every component is 0 or +-k, else -1 (mixed)
    ka, kb = np.meshgrid(np.abs(signed_frequency(np.arange(p), p)),
                         np.abs(signed_frequency(np.arange(p), p)), indexing="ij")
    key = np.where(kb == 0, ka, np.where((ka == 0) | (ka == kb), kb, -1))
    key[0, 0] = -1
    n_keys = p // 2 + 1
    valid = key >= 0
    key_power = np.stack([np.bincount(key[valid], weights=power[..., j][valid], minlength=n_keys)
                          for j in range(power.shape[2])], axis=1)  # (n_keys, r)

    rows = []
    for j in range(power.shape[2]):
        has_power = total[j] > 1e-12 * max(total.max(), 1e-300)
        top_a, top_b = divmod(int(flat_top[j]), p)
        k_a, k_b = canonical_term(top_a, top_b, p) if has_power else (0, 0)
        best_key = int(key_power[:, j].argmax())
        rows.append({
            "feature": j, "power": float(total[j]),
            "purity": float(top_power[j] / total[j]) if has_power else np.nan,
            "k_a": k_a, "k_b": k_b, "term": term_label(k_a, k_b),
            "key_frequency": best_key if has_power else 0,
            "key_frequency_share": (float(key_power[best_key, j] / total[j]) if has_power
                                    else np.nan),
        })
    return pd.DataFrame(rows)


def feature_grids(model: nn.Module, graph: Graph, p: int) -> dict[str, np.ndarray]:
    """Every node layer's features on all p^2 inputs: name -> (p, p, n_positions, r) array.

    Features are the folded model's node-layer activations times the layer's basis ``C`` (the
    same rotation the graph's edges and ablations use), in float64.
    """
    tokens, _ = all_pairs(p)  # a-major: row a * p + b
    grids = {}
    for name, found in features_by_layer(model, graph, graph.layer_names, tokens).items():
        if found.ndim == 2:  # (N, r): one position
            found = found[:, None]
        grids[name] = found.reshape(p, p, found.shape[1], found.shape[2]).numpy()
    return grids


def fourier_table(model: nn.Module, graph: Graph, p: int) -> pd.DataFrame:
    """Fourier purity of every feature of every node layer, one row per (layer, feature)."""
    frames = []
    grids = feature_grids(model, graph, p)
    for layer in graph.layers:
        frame = fourier_purity(grids[layer.name])
        frame.insert(0, "layer", layer.name)
        frame.insert(2, "constant", False)
        if layer.has_constant:  # column 0 is the constant direction: no Fourier content to label
            frame.loc[0, "constant"] = True
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)[COLUMNS]


def modadd_analysis(model: nn.Module, graph: Graph, p: int) -> dict[str, pd.DataFrame]:
    """The modular-addition family's analysis of the graph: ``{"fourier": table}``."""
    return {FOURIER_TABLE: fourier_table(model, graph, p)}
