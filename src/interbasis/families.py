"""The model families, by ``model.family``: the one place a family is registered.

Each family is one module (``interbasis.training.<name>``) defining ``FAMILY_SPEC``, a
:class:`~interbasis.training.family.Family`; its config file is ``conf/model/<name>.yaml`` (with
its data and train sections, and its schema in ``interbasis.config``). The pipeline imports this
registry; the family modules never import the pipeline.
"""

from __future__ import annotations

from interbasis.config import ConfigError
from interbasis.training import hf_lm, modadd, poly_toy, tiny_gpt, vision
from interbasis.training.family import Family, Prepared

FAMILIES: dict[str, Family] = {module.FAMILY_SPEC.name: module.FAMILY_SPEC
                               for module in (modadd, vision, tiny_gpt, poly_toy, hf_lm)}

__all__ = ["FAMILIES", "Family", "Prepared", "family"]


def family(name: str) -> Family:
    """The registered family ``name``; one line listing the others for an unknown one."""
    if name not in FAMILIES:
        raise ConfigError(f"config error: model.family = {name!r}: no such family; registered: "
                          f"{', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]
