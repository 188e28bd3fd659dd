"""Forwarding a merged anonymous id's later events to its user's partition (pure steps).

One worker folds each profile: an event sent with an anonymous id merged into a user whose
own events arrive on another partition is stored where it was read and forwarded to the
user's partition on the stitched topic, where the user's worker folds it.
"""

from datetime import UTC, datetime

import orjson
from aggregator_factories import event, record

from ecrm_aggregator.decode import SourceRecord, parse_origin
from ecrm_aggregator.identity import IdentityLink, decide, unmerge
from ecrm_aggregator.pipeline import fold_batch, group_by_customer, new_events, plan_batch

NOW = datetime(2026, 11, 22, tzinfo=UTC)
MERGED = {"a1": IdentityLink("a1", "u1", "merged", "identify-1", NOW, "aggregator", user_partition=1)}


def _anonymous_page(message_id: str = "late-page") -> dict:
    body = event("page", customer="a1", messageId=message_id, ts="2026-11-21T10:00:00Z")
    body["anonymousId"] = body.pop("userId")
    return body


def _split(records, links, profiles=None, forwarding=True):
    plan = plan_batch(records)
    identity = decide(plan.link_requests, links, plan.known_users, NOW)
    return identity, new_events(plan, identity, profiles or {}, forwarding=forwarding)


def test_a_merged_anonymous_ids_event_is_stored_where_read_and_forwarded_to_its_user() -> None:
    _, fresh = _split([record(_anonymous_page(), 5, partition=0)], MERGED)
    assert [row[1] for row in fresh.rows] == ["a1"]  # stored under the id it was sent with
    assert fresh.to_fold == [] and [(p.partition, p.offset) for p in fresh.forward] == [(0, 5)]


def test_without_kafka_everything_is_folded_where_it_is_read() -> None:
    _, fresh = _split([record(_anonymous_page(), 5, partition=0)], MERGED, forwarding=False)
    assert fresh.forward == [] and [p.offset for p in fresh.to_fold] == [5]


def test_an_event_read_on_its_users_partition_is_folded_there() -> None:
    _, fresh = _split([record(_anonymous_page(), 5, partition=1)], MERGED)
    assert fresh.forward == [] and [p.offset for p in fresh.to_fold] == [5]


def _forwarded(message_id: str = "late-page", offset: int = 0) -> SourceRecord:
    return SourceRecord(1, offset, b"u1", orjson.dumps(_anonymous_page(message_id)), origin=(0, 5))


def test_a_forwarded_event_is_folded_into_the_user_once_and_never_stored_again() -> None:
    identity, fresh = _split([_forwarded()], MERGED)
    assert fresh.rows == [] and [(p.partition, p.offset, p.forwarded) for p in fresh.to_fold] == [(0, 5, True)]
    [change] = fold_batch(group_by_customer(fresh.to_fold, identity), {}, NOW).changes
    user = change.profile
    assert (user.customer_id, user.page_views, user.positions) == ("u1", 1, {0: 5})
    assert user.source_partition == -1  # the user's own partition is not the anonymous id's

    # Forwarded twice (the forwarding worker died before committing): the position says folded.
    identity, again = _split([_forwarded(offset=1)], MERGED, {"u1": user})
    assert fold_batch(group_by_customer(again.to_fold, identity), {"u1": user}, NOW).profile_rows == []


def test_a_forwarded_event_of_an_id_unmerged_meanwhile_is_dropped() -> None:
    undone, _ = unmerge(MERGED["a1"], "operator", "wrong person", NOW, "unmerge-1")
    _, fresh = _split([_forwarded()], {"a1": undone})
    assert fresh.to_fold == [] and fresh.rows == [] and fresh.forward == []


def test_links_remember_where_the_user_is_read() -> None:
    identify = event("identify", customer="u1", anonymousId="a1", messageId="identify-1")
    plan = plan_batch([record(identify, 3, partition=7)])
    identity = decide(plan.link_requests, {}, plan.known_users, NOW)
    assert [link.user_partition for link in identity.new_links] == [7]
    assert identity.home_partition("a1", 2) == 7 and identity.home_partition("someone", 2) == 2


def test_origin_headers() -> None:
    assert parse_origin(b"3:1200") == (3, 1200)
    assert parse_origin(None) is None and parse_origin(b"garbage") is None
