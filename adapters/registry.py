"""The partner registry: one ``PartnerProgram`` per configured partner."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime

from adapters.airline import AirlineProgram
from adapters.eshop import EshopProgram
from adapters.program import ConfiguredPartner
from adapters.ridehail import RidehailProgram
from adapters.topics import PartnerTopics
from points.partners import PartnersConfig, UnknownPartner
from points.ports import PartnerProgram
from points.signing import REPLAY_WINDOW_S, Headers, KeyRing

__all__ = ["ADAPTERS", "PartnerRegistry", "build_registry"]

ADAPTERS: Mapping[str, type[ConfiguredPartner]] = {
    "ridehail": RidehailProgram,
    "eshop": EshopProgram,
    "airline": AirlineProgram,
}
"""Partners with behaviour of their own; any other configured partner is a ConfiguredPartner."""


class PartnerRegistry:
    def __init__(self, programs: Mapping[str, PartnerProgram], topics: PartnerTopics) -> None:
        self._programs = dict(programs)
        self._topics = topics

    def get(self, partner_id: str) -> PartnerProgram:
        try:
            return self._programs[partner_id]
        except KeyError:
            raise UnknownPartner(f"no partner program {partner_id!r}") from None

    def for_events_topic(self, topic: str) -> PartnerProgram:
        """The program whose events topic ``topic`` is (the topic decides who may speak)."""
        partner_id = self._topics.partner_of_events(topic)
        if partner_id is None:
            raise UnknownPartner(f"{topic!r} is not a partner events topic")
        return self.get(partner_id)

    def events_topics(self) -> list[str]:
        return [self._topics.events(pid) for pid in self._programs]

    def sign_request(self, topic: str, value: bytes, now: datetime) -> Headers | None:
        """Fresh signature headers for a request about to be published on ``topic`` (one of
        our partners' requests topics), or None for any other topic. The relay calls it, so a
        request signed when written to the outbox is signed again when it really leaves."""
        partner_id = self._topics.partner_of_requests(topic)
        program = self._programs.get(partner_id) if partner_id is not None else None
        if not isinstance(program, ConfiguredPartner):
            return None
        return program.sign(value, now)

    def __iter__(self) -> Iterator[str]:
        return iter(self._programs)

    def __len__(self) -> int:
        return len(self._programs)


def build_registry(
    config: PartnersConfig,
    keys: KeyRing,
    topics: PartnerTopics | None = None,
    *,
    partner_ids: list[str] | None = None,
    replay_window_s: int = REPLAY_WINDOW_S,
) -> PartnerRegistry:
    topics = topics or PartnerTopics()
    programs: dict[str, PartnerProgram] = {}
    for partner_id in partner_ids or list(config.partners):
        partner = config.get(partner_id)
        cls = ADAPTERS.get(partner_id, ConfiguredPartner)
        programs[partner_id] = cls(partner, keys, topics, replay_window_s=replay_window_s)
    return PartnerRegistry(programs, topics)
