"""The merge guard and identity resolution (pure)."""

from datetime import UTC, datetime

from aggregator_factories import event, record

from ecrm_aggregator.decode import decode_records
from ecrm_aggregator.identity import IdentityLink, decide, link_requests, unmerge

NOW = datetime(2026, 11, 22, tzinfo=UTC)


def _requests(*bodies):
    return link_requests(decode_records([record(b, i) for i, b in enumerate(bodies)]).events)


def _link(anonymous: str, user: str, state="merged") -> IdentityLink:
    return IdentityLink(anonymous, user, state, "m0", NOW, "aggregator")


def test_identify_and_alias_ask_for_links() -> None:
    requests = _requests(
        event("identify", customer="u1", anonymousId="a1", messageId="i1"),
        event("identify", customer="u1", messageId="i2"),  # no anonymous id: nothing to stitch
        {
            "type": "alias",
            "previousId": "a2",
            "userId": "u1",
            "messageId": "al",
            "timestamp": "2026-11-20T10:00:00Z",
            "receivedAt": "2026-11-20T10:00:00Z",
        },
        event("identify", customer="u1", anonymousId="u1", messageId="i3"),  # the same id twice
    )
    assert [(r.anonymous_id, r.user_id, r.message_id) for r in requests] == [("a1", "u1", "i1"), ("a2", "u1", "al")]


def test_a_new_anonymous_id_is_merged_and_resolves_to_the_user() -> None:
    decision = decide(_requests(event("identify", customer="u1", anonymousId="a1", messageId="i1")), {}, {"u1"}, NOW)
    assert [(link.anonymous_id, link.user_id, link.state) for link in decision.new_links] == [("a1", "u1", "merged")]
    assert [(r.action, r.message_id) for r in decision.records] == [("merged", "i1")]
    assert decision.resolve("a1") == "u1" and decision.resolve("a9") == "a9" and decision.resolve("u1") == "u1"
    assert decision.anonymous_ids_of("u1") == ["a1"]


def test_two_known_users_are_never_merged() -> None:
    requests = _requests(
        {
            "type": "alias",
            "previousId": "u-old",
            "userId": "u-new",
            "messageId": "al",
            "timestamp": "2026-11-20T10:00:00Z",
            "receivedAt": "2026-11-20T10:00:00Z",
        }
    )
    decision = decide(requests, {}, {"u-old", "u-new"}, NOW)
    assert decision.new_links == [] and decision.resolve("u-old") == "u-old"
    [refused] = decision.records
    assert refused.action == "refused" and "known userId" in refused.reason and refused.message_id == "al"


def test_an_anonymous_id_merged_into_one_user_is_not_moved_to_another() -> None:
    requests = _requests(event("identify", customer="u2", anonymousId="a1", messageId="i2"))
    decision = decide(requests, {"a1": _link("a1", "u1")}, {"u2"}, NOW)
    assert decision.new_links == [] and decision.resolve("a1") == "u1"
    assert [r.action for r in decision.records] == ["refused"]


def test_a_repeated_identify_changes_nothing_and_records_nothing() -> None:
    requests = _requests(event("identify", customer="u1", anonymousId="a1", messageId="i1"))
    decision = decide(requests, {"a1": _link("a1", "u1")}, {"u1"}, NOW)
    assert decision.new_links == [] and decision.records == []


def test_an_operators_unmerge_sticks_but_another_user_may_claim_the_id() -> None:
    undone, record_ = unmerge(_link("a1", "u1"), "ops@example.com", "shared computer", NOW, "op-1")
    assert (undone.state, undone.actor, record_.action, record_.reason) == (
        "unmerged", "ops@example.com", "unmerged", "shared computer")  # fmt: skip
    again = decide(_requests(event("identify", customer="u1", anonymousId="a1")), {"a1": undone}, {"u1"}, NOW)
    assert again.new_links == [] and [r.action for r in again.records] == ["refused"]
    other = decide(_requests(event("identify", customer="u2", anonymousId="a1")), {"a1": undone}, {"u2"}, NOW)
    assert [link.user_id for link in other.new_links] == ["u2"]


def test_links_made_earlier_in_the_batch_guard_later_requests() -> None:
    requests = _requests(
        event("identify", customer="u1", anonymousId="a1", messageId="i1"),
        event("identify", customer="u2", anonymousId="a1", messageId="i2"),
    )
    decision = decide(requests, {}, {"u1", "u2"}, NOW)
    assert decision.resolve("a1") == "u1"
    assert [(r.action, r.user_id) for r in decision.records] == [("merged", "u1"), ("refused", "u2")]
