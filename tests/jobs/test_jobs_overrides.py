"""What-if configuration: overrides parsed from the command line and applied to routing records."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from jobs.overrides import ConfigChanges, parse_override
from jobs.timeline import TimeWindow
from models.deployments import RoutingRecord
from tests.jobs.factories import DEPLOYMENT_A, DEPLOYMENT_B, GUILD_A, companion, deployed


def record() -> RoutingRecord:
    a = deployed(companion(), DEPLOYMENT_A, GUILD_A, "1")
    b = deployed(companion(), DEPLOYMENT_B, GUILD_A, "2")
    return RoutingRecord(key=GUILD_A, deployments=[a, b], version=3)


def probabilities(routing: RoutingRecord) -> list[float]:
    return [d.agent.behavior.response_triggers.random.probability for d in routing.deployments]


def test_an_override_reaches_every_deployment_or_the_one_named() -> None:
    everyone = ConfigChanges(overrides=(parse_override("trigger.random.probability=0.25"),))
    assert probabilities(everyone.apply(record())) == [0.25, 0.25]
    one = ConfigChanges(overrides=(parse_override(f"{DEPLOYMENT_B}:behavior.reply_to_bots=true"),))
    assert [d.agent.behavior.reply_to_bots for d in one.apply(record()).deployments] == [False, True]
    assert one.apply(record()).version == 3


def test_a_whole_configuration_replaces_one_deployments() -> None:
    changes = ConfigChanges(
        overrides=(parse_override(f"{DEPLOYMENT_A}:trigger.random.probability=0.5"),),
        agents={DEPLOYMENT_A: companion(random_probability=0.9), uuid4(): companion()},
    )
    assert probabilities(changes.apply(record())) == [0.5, 0.0]


def test_bad_overrides_name_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="expected"):
        parse_override("trigger.random.probability")
    with pytest.raises(ValueError, match="not a deployment id"):
        parse_override("someone:trigger.random.probability=1")
    with pytest.raises(ValueError, match=r"behavior\.response_triggers\.random\.probability"):
        ConfigChanges(overrides=(parse_override("trigger.random.probability=7"),)).apply(record())
    with pytest.raises(ValueError, match=r"ai_config\.text_model is not an object"):
        ConfigChanges(overrides=(parse_override("ai_config.text_model.x=1"),)).apply(record())


def test_time_windows_are_checked() -> None:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="end"):
        TimeWindow(at, at)
    with pytest.raises(ValueError, match="start"):
        TimeWindow(at.replace(tzinfo=None), None)
