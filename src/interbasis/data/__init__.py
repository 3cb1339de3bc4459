"""Datasets, one module per model family."""

from interbasis.data.modadd import ModAddSplit, all_pairs, make_modadd_split

__all__ = ["ModAddSplit", "all_pairs", "make_modadd_split"]
