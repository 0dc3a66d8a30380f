"""The rules a topic must meet before Chancery uses it (services/platform/topics.py).

Given what the brokers say of an existing topic, and what the settings ask for: accepted, or
refused with a message that names both sides.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from chancery.contract import DEFAULT_PARTITIONS
from chancery.settings import CommonSettings
from services.platform.topics import (
    KEEP_FOREVER,
    TopicSpec,
    TopicState,
    chancery_topics,
    topic_problems,
    topics_from_settings,
)

pytestmark = pytest.mark.unit


def existing(
    partitions: int = 6, replicas: int = 1, min_isr: str | None = "1", retention: str = "-1"
) -> TopicState:
    configs = {"retention.ms": retention}
    if min_isr is not None:
        configs["min.insync.replicas"] = min_isr
    return TopicState("chancery.events", partitions, replicas, configs)


def log_spec(partitions: int | None = None, replicas: int = 1, min_isr: int = 1) -> TopicSpec:
    return chancery_topics(
        partitions=partitions, replication_factor=replicas, min_insync_replicas=min_isr
    )[0]


@pytest.mark.parametrize("count", [1, 6, 12, 48])
def test_an_existing_log_is_used_with_any_count_when_none_is_configured(count: int) -> None:
    assert topic_problems(log_spec(), existing(partitions=count)) == []


def test_a_new_log_gets_the_default_count_unless_one_is_configured() -> None:
    assert log_spec().partitions == DEFAULT_PARTITIONS == 6
    assert log_spec(partitions=12).partitions == 12


def test_a_configured_count_that_differs_from_the_topics_is_refused_naming_both() -> None:
    (problem,) = topic_problems(log_spec(partitions=12), existing(partitions=6))
    assert "has 6 partitions" in problem
    assert "12 are configured" in problem
    assert "CHANCERY_PARTITIONS" in problem


def test_a_configured_count_equal_to_the_topics_is_accepted() -> None:
    assert topic_problems(log_spec(partitions=6), existing(partitions=6)) == []


def test_the_dead_letter_topic_is_accepted_with_any_count() -> None:
    dead_letters = chancery_topics(partitions=12)[1]
    assert dead_letters.partitions == 1
    assert topic_problems(dead_letters, existing(partitions=3)) == []


def test_fewer_replicas_than_required_are_refused() -> None:
    (problem,) = topic_problems(log_spec(replicas=3, min_isr=2), existing(replicas=1, min_isr="2"))
    assert "1 replica(s)" in problem
    assert "3 required" in problem


def test_a_lower_min_insync_replicas_than_required_is_refused() -> None:
    (problem,) = topic_problems(log_spec(replicas=3, min_isr=2), existing(replicas=3, min_isr="1"))
    assert "min.insync.replicas=1" in problem
    assert "2 required" in problem


def test_more_replicas_and_a_stricter_min_insync_are_accepted() -> None:
    assert topic_problems(log_spec(), existing(replicas=3, min_isr="2")) == []
    assert topic_problems(log_spec(replicas=3, min_isr=2), existing(replicas=5, min_isr="3")) == []


def test_an_unknown_min_insync_replicas_is_refused() -> None:
    assert topic_problems(log_spec(), existing(min_isr=None)) != []


def test_a_log_that_is_not_kept_forever_is_refused() -> None:
    (problem,) = topic_problems(log_spec(), existing(retention="604800000"))
    assert "retention.ms=604800000, not -1" in problem


def test_every_problem_is_reported_at_once() -> None:
    state = existing(partitions=3, replicas=1, min_isr="1")
    assert len(topic_problems(log_spec(partitions=6, replicas=3, min_isr=2), state)) == 3


def test_a_spec_whose_writes_could_never_succeed_is_refused() -> None:
    with pytest.raises(ValueError, match="more than the replication factor"):
        TopicSpec("t", 6, replication_factor=1, min_insync_replicas=2)
    with pytest.raises(ValueError, match=">= 1"):
        TopicSpec("t", 0)


def test_min_insync_replicas_goes_through_its_own_field() -> None:
    with pytest.raises(ValueError, match="min_insync_replicas"):
        TopicSpec("t", 6, {"min.insync.replicas": "2"})


def test_the_topics_follow_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANCERY_TOPIC", "log")
    monkeypatch.setenv("CHANCERY_DEAD_LETTER_TOPIC", "log.dlq")
    monkeypatch.setenv("CHANCERY_PARTITIONS", "12")
    monkeypatch.setenv("CHANCERY_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("CHANCERY_MIN_INSYNC_REPLICAS", "2")

    log, dead_letters = topics_from_settings(CommonSettings())

    assert (log.name, log.partitions, log.require_partitions) == ("log", 12, True)
    assert (dead_letters.name, dead_letters.require_partitions) == ("log.dlq", False)
    for spec in (log, dead_letters):
        assert (spec.replication_factor, spec.min_insync_replicas) == (3, 2)
        assert spec.configs == KEEP_FOREVER


def test_by_default_one_copy_and_any_existing_count(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PARTITIONS", "REPLICATION_FACTOR", "MIN_INSYNC_REPLICAS"):
        monkeypatch.delenv(f"CHANCERY_{name}", raising=False)
    settings = CommonSettings()
    assert (settings.partitions, settings.replication_factor) == (None, 1)
    assert settings.min_insync_replicas == 1
    assert topics_from_settings(settings)[0].require_partitions is False


def test_an_empty_partition_count_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANCERY_PARTITIONS", "")
    assert CommonSettings().partitions is None


def test_settings_whose_writes_could_never_succeed_fail_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHANCERY_REPLICATION_FACTOR", "1")
    monkeypatch.setenv("CHANCERY_MIN_INSYNC_REPLICAS", "2")
    with pytest.raises(ValidationError, match="min_insync_replicas=2 is more than"):
        CommonSettings()
