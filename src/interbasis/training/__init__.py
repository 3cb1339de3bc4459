"""Model families and the one training loop.

- ``loop``: the training loop every trained family runs (threads, resume, the checkpoint cache,
  curves, divergence checks); ``checkpoint`` and ``cache``: checkpoint files and where they live.
- ``family``: what a family is to the pipeline (``Family``, ``Prepared``).
- one module per family (``modadd``, ``vision``, ``tiny_gpt``, ``poly_toy``, ``hf_lm``): its
  config sections (schema), training recipe, model and data and ``debug=tiny`` shrink, in its
  ``FAMILY_SPEC``; ``interbasis.families`` finds every module here that defines one.

The family modules are not imported here so that ``python -m interbasis.training.modadd`` runs
the module only once.
"""
