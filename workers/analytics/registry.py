"""Analyzer plugins, registered by name (the Frigate detector-plugin pattern).

An analyzer is a class with a ``name``, a pydantic ``Config`` and ``__call__(frame, faces) ->
faces``. Adding a capability means adding one module that calls ``register``.
"""

from __future__ import annotations

from typing import Callable, ClassVar, Protocol

import numpy as np
from pydantic import BaseModel

from workers.analytics.faces import Faces


class Analyzer(Protocol):
    name: ClassVar[str]
    Config: ClassVar[type[BaseModel]]

    def __call__(self, frame: np.ndarray, faces: Faces) -> Faces: ...


ANALYZERS: dict[str, type] = {}


def register(cls: type) -> type:
    if cls.name in ANALYZERS:
        raise ValueError(f"analyzer {cls.name!r} registered twice")
    ANALYZERS[cls.name] = cls
    return cls


def load_plugins(modules: list[str]) -> None:
    """Import extra analyzer modules (``VIDFARM_PLUGINS``): each registers itself on import."""
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ValueError(f"analyzer plugin {module!r} cannot be imported: {exc}") from None


def build_chain(names: list[str], configs: dict[str, dict]) -> list[Callable[[np.ndarray, Faces], Faces]]:
    """Instantiate the named analyzers, in order, each with its validated config."""
    chain = []
    for name in names:
        if name not in ANALYZERS:
            raise ValueError(f"unknown analyzer {name!r} (known: {', '.join(sorted(ANALYZERS))})")
        cls = ANALYZERS[name]
        chain.append(cls(cls.Config(**configs.get(name, {}))))
    return chain
