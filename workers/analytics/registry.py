"""Analyzer plugins, registered by name (the Frigate detector-plugin pattern).

An analyzer subclasses ``Analyzer``: a ``name``, a pydantic ``Config`` and ``__call__(picture,
faces) -> faces``. Adding a capability means adding one module that calls ``register``
(docs/architecture.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, ClassVar

import numpy as np
from pydantic import BaseModel

# The base of every analyzer's config; the built-in analyzers' configs are in core (the
# settings compose them), a plugin's may subclass it wherever it lives.
from core.analyzer_configs import AnalyzerConfig  # noqa: F401
from workers.analytics.faces import Faces

if TYPE_CHECKING:
    from workers.analytics.picture import Picture
    from workers.analytics.tracks import SegmentState


class Analyzer:
    """One step of the segment pipeline, built once per worker process from its config."""
    name: ClassVar[str]
    Config: ClassVar[type[BaseModel]]

    def __init__(self, config: BaseModel):
        self.config = config

    def begin(self, state: SegmentState) -> None:
        """A new segment starts; ``state`` is shared by the chain until it ends (tracks, the
        gallery). Analyzers that keep nothing between frames leave this alone."""

    def __call__(self, picture: Picture, faces: Faces) -> Faces:
        """The faces of one frame, with this analyzer's columns filled in."""
        raise NotImplementedError

    def end(self, state: SegmentState) -> None:
        """Every frame of the segment is analysed (``state.faces``): last changes that need the
        whole segment (the tracker fills the frames a face was missed on)."""


ANALYZERS: dict[str, type] = {}


def register(cls: type) -> type:
    if not issubclass(cls, Analyzer):
        raise TypeError(f"analyzer {getattr(cls, 'name', cls.__name__)!r} must subclass "
                        "workers.analytics.registry.Analyzer")
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
