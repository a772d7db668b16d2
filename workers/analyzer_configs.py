"""Checking the analyzers' configs from the settings (``Settings.analyzer_configs``) against
the registered analyzers' models, where a process that loads plugins starts (a worker, the
CLI), so that a bad value is one clear line there and never a failed segment. The built-in
analyzers' configs are already checked when the settings load (``core.analyzer_configs``);
a plugin's model is only known once its module is imported, here."""

from __future__ import annotations

from pydantic import ValidationError

from core.errors import first_problem


class AnalyzerConfigError(ValueError):
    """One line naming the analyzer, the field and what is wrong with it."""


def check(configs: dict[str, dict], plugins: tuple[str, ...] = ()) -> None:
    from workers import pipeline  # noqa: F401  (registers the analyzers vidfarm ships)
    from workers.analytics.registry import ANALYZERS, load_plugins

    load_plugins(list(plugins))
    for name, values in configs.items():
        if name not in ANALYZERS:
            raise AnalyzerConfigError(f"analyzer_config: no analyzer named {name!r} "
                                      f"(known: {', '.join(sorted(ANALYZERS))})")
        try:
            ANALYZERS[name].Config(**values)
        except ValidationError as error:
            where, what = first_problem(error)
            raise AnalyzerConfigError(f"analyzer_config.{name}.{where}: {what}") from None
