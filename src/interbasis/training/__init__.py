"""Training loops and the checkpoint cache of trained models.

``interbasis.training.modadd`` trains the modular-addition transformer (``load_or_train``);
``interbasis.training.checkpoint`` reads and writes checkpoints. The loops are not imported here so
that ``python -m interbasis.training.modadd`` runs the module only once.
"""
