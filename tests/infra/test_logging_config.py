"""The functions send no platform INFO lines (START / END / REPORT) to CloudWatch Logs: each is billed
per byte, at one record per invocation as much as the metrics. Lambda's advanced logging controls do it
(stacks/runtime.py cites the AWS pages): JSON log format, system log level WARN; the application log
level stays INFO, the level Lambda gives a printed JSON line without a "level" key (the EMF documents)."""

from __future__ import annotations

import pytest

from tests.infra.conftest import Synthesized
from tests.infra.templates import function_named

pytestmark = pytest.mark.infra

EXPECTED = {"LogFormat": "JSON", "SystemLogLevel": "WARN", "ApplicationLogLevel": "INFO"}


def logging_config(synth: Synthesized, region: str, name: str) -> dict[str, object]:
    _, function = function_named(synth.template(region), name)
    config = dict(function["Properties"].get("LoggingConfig") or {})
    config.pop("LogGroup", None)  # the function's own log group (stacks/runtime.py), checked elsewhere
    return config


def test_replicator_and_drain_functions_drop_the_platform_info_lines(mesh3: Synthesized) -> None:
    for plan in mesh3.config.regions:
        assert logging_config(mesh3, plan.region, plan.replicator_function_name) == EXPECTED, plan.region
        for target in plan.targets:
            assert logging_config(mesh3, plan.region, target.drain_function_name) == EXPECTED, target.region


def test_the_one_way_source_functions_drop_the_platform_info_lines(one_way: Synthesized) -> None:
    source = one_way.config.regions[0]
    assert logging_config(one_way, source.region, source.replicator_function_name) == EXPECTED
    for target in source.targets:
        assert logging_config(one_way, source.region, target.drain_function_name) == EXPECTED
