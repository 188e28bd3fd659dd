"""Step: identity stitching (pure).

``identify`` (userId + anonymousId) and ``alias`` (previousId → userId) ask to link an
anonymous id to a known user; from then on the anonymous id's events, earlier ones included,
belong to that user's profile. The merge guard: an id that is itself a known userId is
never merged into another user automatically, an anonymous id linked to one user is never
moved to another, and a link an operator undid is not made again by the same user's events.
Every decision (merged, refused) is recorded with the event that caused it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from ecrm_aggregator.decode import PositionedEvent
from ecrm_schemas.events import AliasEvent, IdentifyEvent

LinkState = Literal["merged", "unmerged"]
MergeAction = Literal["merged", "refused", "unmerged"]


@dataclass(frozen=True, slots=True)
class LinkRequest:
    """An event asking for ``anonymous_id`` to be treated as ``user_id``."""

    anonymous_id: str
    user_id: str
    message_id: str
    timestamp: datetime
    partition: int = -1
    """Where the request was read: identify and alias are keyed by the user, so this is where
    the user's own events arrive."""


@dataclass(frozen=True, slots=True)
class IdentityLink:
    """The current link of one anonymous id (``identity_links``)."""

    anonymous_id: str
    user_id: str
    state: LinkState
    message_id: str
    changed_at: datetime
    actor: str
    user_partition: int = -1
    """The partition of the events topic the user's own events arrive on (-1: unknown, links
    made before migration 0006): the anonymous id's later events are folded there."""


@dataclass(frozen=True, slots=True)
class MergeRecord:
    """One line of the merge log (``identity_merges``)."""

    at: datetime
    action: MergeAction
    anonymous_id: str
    user_id: str
    message_id: str
    actor: str
    reason: str
    rule: str = ""
    """For a refusal, which guard refused (``known_user``, ``already_merged``,
    ``unmerged_by_operator``): what logs and metrics name (not stored; ``reason`` says it in words)."""


@dataclass(slots=True)
class IdentityDecision:
    new_links: list[IdentityLink] = field(default_factory=list)
    records: list[MergeRecord] = field(default_factory=list)
    links: dict[str, IdentityLink] = field(default_factory=dict)
    """Every link known after this batch, by anonymous id."""
    _by_user: dict[str, list[str]] | None = None

    def resolve(self, key: str) -> str:
        """The customer an event keyed ``key`` belongs to."""
        link = self.links.get(key)
        return link.user_id if link is not None and link.state == "merged" else key

    def home_partition(self, key: str, partition: int) -> int:
        """Where the customer of an event keyed ``key``, read from ``partition``, is folded:
        the user's partition for a merged anonymous id (when known), else ``partition``."""
        link = self.links.get(key)
        if link is not None and link.state == "merged" and link.user_partition >= 0:
            return link.user_partition
        return partition

    def anonymous_ids_of(self, user_id: str) -> list[str]:
        if self._by_user is None:
            self._by_user = {}
            for anonymous_id, link in self.links.items():
                if link.state == "merged":
                    self._by_user.setdefault(link.user_id, []).append(anonymous_id)
        return sorted(self._by_user.get(user_id, []))


def link_requests(events: Iterable[PositionedEvent]) -> list[LinkRequest]:
    """The stitching asked for by a batch's identify and alias events, in order."""
    requests = []
    for positioned in events:
        event = positioned.event
        if isinstance(event, AliasEvent):
            anonymous, user = event.previousId, event.userId
        elif isinstance(event, IdentifyEvent) and event.userId and event.anonymousId:
            anonymous, user = event.anonymousId, event.userId
        else:
            continue
        if anonymous != user:
            requests.append(LinkRequest(anonymous, user, event.messageId, event.timestamp, positioned.partition))
    return requests


def known_user_ids(events: Iterable[PositionedEvent]) -> set[str]:
    """Ids a batch shows to be userIds (sent as ``userId``)."""
    return {p.event.userId for p in events if p.event.userId}


def decide(
    requests: Iterable[LinkRequest],
    links: Mapping[str, IdentityLink],
    known_users: set[str],
    now: datetime,
) -> IdentityDecision:
    """Apply the merge guard to each request, in order, against the links known so far.

    ``known_users``: ids known to be userIds (from this batch and from stored profiles).
    """
    decision = IdentityDecision(links=dict(links))
    for request in requests:
        current = decision.links.get(request.anonymous_id)
        if current is not None and current.state == "merged" and current.user_id == request.user_id:
            continue  # already merged into this user: a redelivery or a repeated identify
        refusal = _refusal(request, current, known_users)
        if refusal is not None:
            rule, reason = refusal
            decision.records.append(_record(request, "refused", reason, now, rule))
            continue
        link = IdentityLink(request.anonymous_id, request.user_id, "merged", request.message_id, now, "aggregator",
                            request.partition)  # fmt: skip
        decision.links[request.anonymous_id] = link
        decision._by_user = None
        decision.new_links.append(link)
        decision.records.append(_record(request, "merged", "", now))
    return decision


def _refusal(request: LinkRequest, current: IdentityLink | None, known_users: set[str]) -> tuple[str, str] | None:
    """``(rule, reason)`` when the merge guard refuses the request."""
    if request.anonymous_id in known_users:
        return "known_user", (
            f"{request.anonymous_id!r} is a known userId: two known users are never merged automatically"
        )
    if current is None:
        return None
    if current.state == "merged":
        return "already_merged", "the anonymous id is already merged into another user"
    if current.state == "unmerged" and current.user_id == request.user_id:
        return "unmerged_by_operator", "an operator undid this merge; it is not made again automatically"
    return None


def _record(request: LinkRequest, action: MergeAction, reason: str, now: datetime, rule: str = "") -> MergeRecord:
    return MergeRecord(now, action, request.anonymous_id, request.user_id, request.message_id, "aggregator", reason,
                       rule)  # fmt: skip


def unmerge(
    link: IdentityLink, actor: str, reason: str, now: datetime, message_id: str
) -> tuple[IdentityLink, MergeRecord]:
    """An operator's undo of ``link``: the link is kept as ``unmerged`` so it is not made again."""
    undone = replace(link, state="unmerged", message_id=message_id, changed_at=now, actor=actor)
    record = MergeRecord(now, "unmerged", link.anonymous_id, link.user_id, message_id, actor, reason)
    return undone, record
