"""The chart's autoscaler values kept in step with the code's ScaleSettings: every field an
operator may tune is a key of autoscaler.live / .cpu / .gpu in values.yaml (the code's default
unless the chart says why not), has the pydantic Field's bounds in values.schema.json, and
reaches the autoscaler's pod as VIDFARM_AUTOSCALE_<KIND>__<FIELD>, which its Settings read back."""

from __future__ import annotations

import json
import re
from typing import Literal, get_args, get_origin

import helm_python as helm
import pytest
import yaml
from pydantic.fields import FieldInfo

from core.settings import CpuWorkerScaling, GpuWorkerScaling, LiveWorkerScaling
from tests import chart_check
from tests.test_chart_live import env_of, settings_of

SCALED = {"live": LiveWorkerScaling, "cpu": CpuWorkerScaling, "gpu": GpuWorkerScaling}
SET_BY_THE_CHART = {"deployment", "queue"}            # from the release name and the kind
# The registered cameras reach only the live queue's policy (autoscaler.loop), so these mean
# nothing for cpu or gpu and the schema refuses them there.
LIVE_ONLY = {"camera_fps", "camera_utilization", "spare_cameras"}
# Where values.yaml deliberately differs from the code's default (its comments say why).
CHART_OWN = {("cpu", "scale_down_window_s"): 30, ("cpu", "idle_to_zero_s"): 60,
             ("gpu", "pod_start_s"): 60, ("gpu", "max_step_up"): 2,
             ("gpu", "scale_down_window_s"): 60, ("gpu", "idle_to_zero_s"): 300}
BOUND_KEYWORDS = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum"}


def tunable(kind: str) -> dict[str, FieldInfo]:
    """The ScaleSettings fields of this kind's Deployment that the operator sets in values."""
    skip = SET_BY_THE_CHART | (set() if kind == "live" else LIVE_ONLY)
    return {name: field for name, field in SCALED[kind].model_fields.items() if name not in skip}


def chart_key(field: str) -> str:
    """The values key of a field, camelCase like its neighbours: target_wait_s -> targetWaitSeconds."""
    first, *rest = re.sub(r"_s$", "_seconds", field).split("_")
    return first + "".join(word.capitalize() for word in rest)


def env_name(kind: str, field: str) -> str:
    return f"VIDFARM_AUTOSCALE_{kind.upper()}__{field.upper()}"


def bounds(field: FieldInfo) -> dict[str, float]:
    """The Field's ge/gt/le/lt, as JSON schema keywords."""
    return {BOUND_KEYWORDS[name]: getattr(m, name) for m in field.metadata
            for name in BOUND_KEYWORDS if hasattr(m, name)}


def other_value(field: FieldInfo, nth: int):
    """A valid value that is not the default, different for each nth Deployment (so one kind's
    value showing up in another kind's variable is caught)."""
    default = field.default
    if get_origin(field.annotation) is Literal:
        others = [choice for choice in get_args(field.annotation) if choice != default]
        return others[nth % len(others)]
    if "maximum" in bounds(field):                                 # a fraction: stay below the top
        return default + (bounds(field)["maximum"] - default) / (2 + nth)
    if field.annotation is int:
        return default + 2 + nth
    if field.annotation is float:
        return default + 1.5 + nth
    raise TypeError(f"other_value does not know how to change a {field.annotation} setting")


def test_every_setting_given_in_values_reaches_the_autoscaler(monkeypatch):
    given = {kind: {name: other_value(field, nth) for name, field in tunable(kind).items()}
             for nth, kind in enumerate(SCALED)}
    values = {"workers": {"gpu": {"enabled": True}},
              "autoscaler": {kind: {chart_key(name): value for name, value in fields.items()}
                             for kind, fields in given.items()}}
    objects = chart_check.render(values)
    env = env_of(objects, "-autoscaler")
    missing = [env_name(kind, name) for kind, fields in given.items() for name in fields
               if env_name(kind, name) not in env]
    assert missing == []
    settings = settings_of(objects, monkeypatch)
    for kind, fields in given.items():
        read = getattr(settings, f"autoscale_{kind}")
        assert {name: getattr(read, name) for name in fields} == fields, kind
        assert (read.deployment, read.queue) == (f"vidfarm-worker-{kind}", kind)


def test_values_yaml_sets_every_setting_to_the_codes_default_or_says_why_not():
    values = yaml.safe_load((chart_check.CHART / "values.yaml").read_text())["autoscaler"]
    for kind in SCALED:
        fields = tunable(kind)
        assert set(values[kind]) == {chart_key(name) for name in fields}, kind
        for name, field in fields.items():
            assert values[kind][chart_key(name)] == CHART_OWN.get((kind, name), field.default), (kind, name)


def schema_of(field: FieldInfo) -> dict:
    if get_origin(field.annotation) is Literal:
        return {"enum": list(get_args(field.annotation))}
    return {"type": {int: "integer", float: "number"}[field.annotation], **bounds(field)}


def test_the_schema_bounds_each_setting_as_the_code_does():
    schema = json.loads((chart_check.CHART / "values.schema.json").read_text())
    properties = schema["properties"]["autoscaler"]["properties"]
    for kind in SCALED:
        expected = {chart_key(name): schema_of(field) for name, field in tunable(kind).items()}
        assert properties[kind]["properties"] == expected, kind
        assert properties[kind]["additionalProperties"] is False, kind


@pytest.mark.parametrize("kind, key, value, refusal", [
    ("cpu", "standbyGapQuantile", 1.5, "maximum: got 1.5, want 1"),
    ("live", "rateWindowSeconds", 0, "exclusiveMinimum: got 0, want 0"),
    ("gpu", "standbyBursts", 0, "minimum: got 0, want 1"),
])
def test_a_setting_out_of_its_bounds_is_refused_before_it_reaches_the_cluster(kind, key, value, refusal):
    with pytest.raises(helm.HelmError, match=re.escape(f"at '/autoscaler/{kind}/{key}': {refusal}")):
        chart_check.render({"autoscaler": {kind: {key: value}}})


@pytest.mark.parametrize("kind", sorted(SCALED))
def test_min_replicas_above_max_replicas_is_refused_naming_the_key(kind):
    """The schema bounds each number alone: a values file with min > max used to install, and
    the autoscaler's settings then refused to start (ScaleSettings, tested in
    test_autoscaler_simulate). The chart refuses it first, naming the key. gpu workers are off
    by default: they are turned on, or the autoscaler would not read those bounds at all."""
    values = {"autoscaler": {kind: {"minReplicas": 5, "maxReplicas": 2}}}
    if kind == "gpu":
        values["workers"] = {"gpu": {"enabled": True}}
    with pytest.raises(helm.HelmRenderError,
                       match=re.escape(f"autoscaler.{kind}.minReplicas (5) is above autoscaler.{kind}.maxReplicas (2)")):
        chart_check.render(values)
    values["autoscaler"][kind]["minReplicas"] = 2          # equal bounds are fine: a fixed count
    assert chart_check.render(values)
