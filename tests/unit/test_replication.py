"""Replication of the exchange's topics: explicit settings, else chosen from the broker count."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from points.settings import KafkaSettings
from streams.topics import Replication, TopicsUnusable


@pytest.mark.parametrize(
    ("brokers", "factor", "min_insync"), [(1, 1, 1), (2, 2, 1), (3, 3, 2), (6, 3, 2)]
)
def test_the_default_follows_the_brokers_the_cluster_reports(
    brokers: int, factor: int, min_insync: int
) -> None:
    """Nothing configured: RF min(brokers, 3); min.insync.replicas 2 with 3 replicas, else 1
    (never the bootstrap string's length)."""
    assert Replication.for_cluster(KafkaSettings(), brokers) == Replication(factor, min_insync)


def test_configured_values_win_and_must_fit_the_cluster() -> None:
    """An explicit RF and min.insync are used as given; an RF above the live brokers is a
    configuration error naming the setting, not a topic the broker refuses later."""
    kafka = KafkaSettings(replication_factor=2, min_insync_replicas=2)
    assert Replication.for_cluster(kafka, 3) == Replication(2, 2)
    with pytest.raises(TopicsUnusable, match="REPLICATION_FACTOR 3 is more than the 1 broker"):
        Replication.for_cluster(KafkaSettings(replication_factor=3), 1)
    with pytest.raises(TopicsUnusable, match="MIN_INSYNC_REPLICAS 3 is more than"):
        Replication.for_cluster(KafkaSettings(min_insync_replicas=3), 2)
    with pytest.raises(ValidationError, match="above replication_factor"):
        KafkaSettings(replication_factor=2, min_insync_replicas=3)
