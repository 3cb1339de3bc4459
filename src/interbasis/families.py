"""The model families, by ``model.family``: the registry, found rather than listed.

A family is one module of ``interbasis.training`` that defines ``FAMILY_SPEC``, a
:class:`~interbasis.training.family.Family` carrying its schema (its model, data and train
sections: ``Family.schema``, a :class:`~interbasis.config.RunConfig` subclass) and its
``debug=tiny`` shrink (``Family.tiny``); its config file is ``conf/family/<name>.yaml``. Every
module of the package is imported once and each ``FAMILY_SPEC`` found is registered, so adding a
family touches no line here. The pipeline imports this registry; the family modules never import
the pipeline.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import interbasis.training
from interbasis.config import ConfigError
from interbasis.training.family import Family, Prepared

FAMILIES: dict[str, Family[Any]] = {}

__all__ = ["FAMILIES", "Family", "Prepared", "discover", "family", "refresh"]


def discover() -> dict[str, Family[Any]]:
    """Every ``FAMILY_SPEC`` of a module in ``interbasis.training`` (any folder on the package's
    ``__path__``), by family name; two modules claiming one name is an error."""
    found: dict[str, Family[Any]] = {}
    owners: dict[str, str] = {}
    package = interbasis.training
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda item: item.name):
        if info.ispkg:
            continue
        name = f"{package.__name__}.{info.name}"
        spec = getattr(importlib.import_module(name), "FAMILY_SPEC", None)
        if not isinstance(spec, Family):
            continue
        if spec.name in found:
            raise ConfigError(f"config error: family {spec.name!r} is defined twice, in "
                              f"{owners[spec.name]} and {name}")
        found[spec.name], owners[spec.name] = spec, name
    return found


def refresh() -> dict[str, Family[Any]]:
    """Look for the family modules again (after adding a folder to ``interbasis.training``'s
    ``__path__``, or a module to the package) and update :data:`FAMILIES` in place."""
    found = discover()
    FAMILIES.clear()
    FAMILIES.update(found)
    return FAMILIES


def family(name: str) -> Family[Any]:
    """The registered family ``name``; one line listing the others for an unknown one."""
    if name not in FAMILIES:
        raise ConfigError(f"config error: model.family = {name!r}: no such family; registered: "
                          f"{', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]


refresh()
