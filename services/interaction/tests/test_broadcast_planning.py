"""The pure parts of broadcasts: the A/B statistics (against textbook values), placing members
in the holdout and the variants, the contact policy's exclusions, the rate's due times."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, time, timedelta

import pytest

from ecrm_interaction.engine.broadcasts import EXCLUDED, HOLDOUT, Member, Variant, due_times, group_of, place
from ecrm_interaction.engine.contact_policy import Contact, FrequencyCap, History, PolicySettings
from ecrm_interaction.engine.experiments import Arm, choose_winner, two_proportion_test, wilson_interval

NOON = datetime(2026, 12, 3, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [(5, 10, 0.2366, 0.7634), (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (81, 263, 0.2553, 0.3662)],
)
def test_the_wilson_interval_matches_the_textbook(successes, trials, low, high) -> None:
    got = wilson_interval(successes, trials)
    assert got == pytest.approx((low, high), abs=1e-4)


def test_the_wilson_interval_without_trials_says_nothing_is_known() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_the_two_proportion_z_test() -> None:
    result = two_proportion_test(50, 100, 30, 100)
    assert result.difference == pytest.approx(0.2)
    assert result.z == pytest.approx(0.2 / math.sqrt(0.4 * 0.6 * 0.02))
    assert result.p_value == pytest.approx(0.00389, abs=1e-5)
    assert two_proportion_test(30, 100, 50, 100).p_value == pytest.approx(result.p_value), "two-sided"
    assert two_proportion_test(0, 10, 0, 10).p_value == 1.0, "no variation"
    assert two_proportion_test(1, 10, 0, 0).p_value == 1.0, "an empty group"


def test_the_winner_is_the_best_rate_tested_against_the_runner_up() -> None:
    clear = choose_winner([Arm("A", 30, 100), Arm("B", 50, 100), Arm("C", 10, 100)])
    assert (clear.name, clear.runner_up, clear.significant) == ("B", "A", True)
    close = choose_winner([Arm("A", 11, 100), Arm("B", 10, 100)])
    assert close.name == "A" and close.significant is False and close.comparison.p_value > 0.5
    assert choose_winner([Arm("A", 5, 10), Arm("B", 5, 10)]).name is None, "a tie has no winner"
    assert choose_winner([Arm("A", 5, 10), Arm("B", 0, 0)]).name is None, "nothing to compare yet"


VARIANTS = [Variant("A", "t1", 70), Variant("B", "t2", 30)]


def test_members_are_placed_by_share_and_always_alike() -> None:
    groups = Counter(group_of("b1", f"c{i}", VARIANTS, 20) for i in range(20_000))
    assert groups[HOLDOUT] / 20_000 == pytest.approx(0.20, abs=0.015)
    sent = groups["A"] + groups["B"]
    assert groups["A"] / sent == pytest.approx(0.70, abs=0.015)
    assert [group_of("b1", f"c{i}", VARIANTS, 20) for i in range(50)] == [
        group_of("b1", f"c{i}", VARIANTS, 20) for i in range(50)
    ]
    other = [group_of("b2", f"c{i}", VARIANTS, 20) for i in range(50)]
    assert other != [group_of("b1", f"c{i}", VARIANTS, 20) for i in range(50)], "each broadcast draws anew"
    assert {group_of("b1", f"c{i}", VARIANTS, 0) for i in range(2000)} == {"A", "B"}, "no holdout"


def test_the_contact_policy_excludes_by_reason_and_quiet_hours_defer() -> None:
    policy = PolicySettings(caps=(FrequencyCap(1, timedelta(days=1)),), quiet_start=time(21), quiet_end=time(8))
    members = [
        Member("ok", Contact("ok@example.com"), History()),
        Member("gone", Contact("g@example.com", unsubscribed=True), History()),
        Member("nocon", Contact("n@example.com", consent=False), History()),
        Member("bounced", Contact("b@example.com", suppressed="hard_bounce"), History()),
        Member("noaddr", Contact(None), History()),
        Member("capped", Contact("c@example.com"), History([NOON - timedelta(hours=2)])),
        Member("night", Contact("t@example.com", timezone="Asia/Tokyo"), History()),  # 21:00 in Tokyo
    ]
    audience = place("b1", members, [Variant("A", "t", 100)], 0, NOON, policy)
    assert audience.members == 7 and audience.to_send == 2 and audience.deferred == 1
    assert audience.excluded == {"unsubscribed": 1, "no_consent": 1, "hard_bounce": 1, "no_email_address": 1,
                                 "frequency_cap_1_per_1d": 1}  # fmt: skip
    placed = {p.customer_id: p for p in audience.placed}
    assert placed["gone"].group == EXCLUDED and placed["gone"].reason == "unsubscribed"
    assert placed["night"].group == "A" and placed["night"].deferred


def test_due_times_follow_the_rate() -> None:
    due = due_times(NOON, 7, 3)
    assert Counter(due) == {NOON: 3, NOON + timedelta(minutes=1): 3, NOON + timedelta(minutes=2): 1}
    assert due_times(NOON, 0, 3) == []
