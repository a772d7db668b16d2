"""An analyzer plugin for the fault tests (loaded with VIDFARM_PLUGINS=tests.poison_plugin):
it fails on every frame, like a model that crashes on some input."""

from typing import ClassVar

from pydantic import BaseModel

from workers.analytics.registry import Analyzer, register


class PoisonConfig(BaseModel):
    pass


@register
class PoisonAnalyzer(Analyzer):
    name: ClassVar[str] = "poison"
    Config: ClassVar[type[BaseModel]] = PoisonConfig

    def __init__(self, config: PoisonConfig):
        self.config = config

    def __call__(self, picture, faces):
        raise RuntimeError("poisoned frame")
