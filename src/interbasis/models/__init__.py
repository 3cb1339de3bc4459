"""Model families; each folds its own biases (``fold_bias()``, docs/method.md §2)."""

from interbasis.models.modadd import HookPoint, ModAddTransformer, ModAddTransformerConfig

__all__ = ["HookPoint", "ModAddTransformer", "ModAddTransformerConfig"]
