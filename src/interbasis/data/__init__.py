"""Datasets, one module per model family."""

from interbasis.data.modadd import ModAddDataConfig, ModAddSplit, all_pairs, make_modadd_split

__all__ = ["ModAddDataConfig", "ModAddSplit", "all_pairs", "make_modadd_split"]
