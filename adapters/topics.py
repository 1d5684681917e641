"""Partner topic names (with an optional prefix, for isolated tests) and their creation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from points.settings import KafkaSettings, TopicNames
from streams.topics import create_topics

__all__ = ["PartnerTopics", "ensure_topics"]


@dataclass(frozen=True)
class PartnerTopics:
    """``<prefix>partner.<id>.events`` and ``<prefix>partner.<id>.requests``."""

    prefix: str = ""
    names: TopicNames = field(default_factory=TopicNames)

    def events(self, partner_id: str) -> str:
        return self.prefix + self.names.partner_events(partner_id)

    def requests(self, partner_id: str) -> str:
        return self.prefix + self.names.partner_requests(partner_id)

    def partner_of_events(self, topic: str) -> str | None:
        """The partner whose events topic this is, or None."""
        return self._partner_of(topic, ".events")

    def partner_of_requests(self, topic: str) -> str | None:
        """The partner whose requests topic this is, or None."""
        return self._partner_of(topic, ".requests")

    def _partner_of(self, topic: str, tail: str) -> str | None:
        head = self.prefix + "partner."
        if topic.startswith(head) and topic.endswith(tail):
            middle = topic[len(head) : -len(tail)]
            return middle if middle and "." not in middle else None
        return None


async def ensure_topics(kafka: KafkaSettings, names: Iterable[str], partitions: int) -> list[str]:
    """Create the missing topics with ``partitions`` partitions and the cluster's replication
    (streams/topics.py); return the ones created. Raises ``TopicsUnusable`` when one cannot
    be used afterwards."""
    created, _ = await create_topics(kafka, dict.fromkeys(names, partitions))
    return created
