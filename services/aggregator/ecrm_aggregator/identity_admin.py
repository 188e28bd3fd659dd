"""Undoing a merge, for operators (``ecrm identity unmerge``): preview, then apply.

The anonymous id's link is kept as ``unmerged`` (so the same user's events do not merge it
again), both profiles are recomputed from their stored events, and both changes are
emitted on the profile-changes topic like any other.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from ecrm_aggregator.clickhouse_store import ClickHouseStore
from ecrm_aggregator.identity import IdentityLink, MergeRecord, unmerge
from ecrm_aggregator.profile_folding import changes_between, previous_values, recompute
from ecrm_aggregator.profile_state import Change, ProfileState
from ecrm_aggregator.rows import profile_row
from ecrm_schemas.kafka_producer import ReliableProducer
from ecrm_schemas.topics import PROFILE_CHANGES

log = structlog.get_logger()


class UnmergeRefused(ValueError):
    """The id has no merge to undo."""


@dataclass(frozen=True, slots=True)
class UnmergePlan:
    link: IdentityLink
    undone: IdentityLink
    record: MergeRecord
    user_before: ProfileState | None
    user_after: ProfileState | None
    """None when the user has no event of their own left."""
    anonymous_before: ProfileState | None
    anonymous_after: ProfileState | None

    def summary(self) -> list[str]:
        """What applying the plan changes, line by line, for the operator to read."""
        lines = [f"unmerge {self.link.anonymous_id!r} from {self.link.user_id!r} "
                 f"(merged {self.link.changed_at:%Y-%m-%d %H:%M:%S} UTC by {self.link.actor}, "
                 f"event {self.link.message_id})"]  # fmt: skip
        for label, before, after in (
            (self.link.user_id, self.user_before, self.user_after),
            (self.link.anonymous_id, self.anonymous_before, self.anonymous_after),
        ):
            lines.append(f"  {label}: {_brief(before)}  ->  {_brief(after)}")
        return lines


def _brief(profile: ProfileState | None) -> str:
    if profile is None:
        return "no profile"
    merged = f", merged into {profile.merged_into}" if profile.merged_into else ""
    return (
        f"{profile.event_count} events, {profile.orders} orders, revenue {profile.revenue}, "
        f"{profile.page_views} page views{merged}"
    )


def plan_unmerge(store: ClickHouseStore, anonymous_id: str, actor: str, reason: str) -> UnmergePlan:
    """Read what undoing ``anonymous_id``'s merge would give; writes nothing."""
    link = store.load_links([anonymous_id]).get(anonymous_id)
    if link is None or link.anonymous_id != anonymous_id or link.state != "merged":
        raise UnmergeRefused(f"{anonymous_id!r} is not merged into anyone")
    now = datetime.now(UTC)
    undone, record = unmerge(link, actor, reason, now, f"unmerge-{uuid.uuid4()}")
    others = [a for a, other in store.load_links([link.user_id]).items()
              if other.user_id == link.user_id and other.state == "merged" and a != anonymous_id]  # fmt: skip
    current = store.load_profiles([link.user_id, anonymous_id])
    user_events = store.load_history([link.user_id, *others])
    anonymous_events = store.load_history([anonymous_id])
    user_before, anonymous_before = current.get(link.user_id), current.get(anonymous_id)
    user_after = recompute(user_before, link.user_id, user_events, now).profile if user_events else None
    anonymous_after = None
    if anonymous_events:
        anonymous_after = recompute(anonymous_before, anonymous_id, anonymous_events, now).profile
    return UnmergePlan(link, undone, record, user_before, user_after, anonymous_before, anonymous_after)


def apply_unmerge(store: ClickHouseStore, plan: UnmergePlan, producer: ReliableProducer | None) -> None:
    """Write the plan: the link and log first, then both recomputed profiles, then their changes."""
    token = plan.record.message_id
    store.insert_identity([plan.undone], [plan.record], token)
    recomputed = [p for p in (plan.user_after, plan.anonymous_after) if p is not None]
    store.insert_profiles([profile_row(p) for p in recomputed], token)
    # The operator's reason is free text (it may name the person): it stays in identity_merges.
    log.info("identity_unmerged", anonymous_id=plan.link.anonymous_id, user_id=plan.link.user_id,
             message_id=token, actor=plan.record.actor, profiles_recomputed=len(recomputed))  # fmt: skip
    if producer is None:
        return
    befores = {plan.link.user_id: plan.user_before, plan.link.anonymous_id: plan.anonymous_before}
    for profile in recomputed:
        before = befores[profile.customer_id]
        changed = changes_between(before, profile)
        change = Change(profile.customer_id, profile, changed, [], plan.record.at, previous_values(before, changed))
        producer.produce(PROFILE_CHANGES.name, change.encode(), key=profile.customer_id.encode())
    producer.flush_or_raise(30)
