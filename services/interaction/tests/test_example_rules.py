"""The shipped example rules (``examples/rules.yaml``, what ``make run`` loads) work together
(issue 16, symptom 12): a customer's first week through them, with the real store, the
dispatcher and an SMTP server, under the default contact policy. Every message that should go
out goes out, once; none twice."""

import email
from datetime import UTC, datetime, timedelta
from email import policy as email_policy
from pathlib import Path
from typing import Any

import pytest

from ecrm_interaction.consumer.intake import Intake, IntakeStep
from ecrm_interaction.delivery.dispatcher import Dispatcher
from ecrm_interaction.engine.rules_file import load_rules_file
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage import actions as action_store
from ecrm_interaction.storage import cases as case_store
from ecrm_interaction.storage import loyalty as loyalty_store
from ecrm_interaction.storage import rules as rule_store
from ecrm_interaction.storage.store import Store, make_engine, migrate
from ecrm_schemas.profile import ComputedTraits, CustomerProfile, ProfileChanged, TriggerEvent

pytestmark = pytest.mark.smtp
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "rules.yaml"
MONDAY = datetime(2026, 11, 16, tzinfo=UTC)


class Week:
    """One customer, Ada, living through the shipped examples (times in UTC, her zone)."""

    def __init__(self, tmp_path: Path, sink: Any) -> None:
        settings = InteractionSettings(database_url=f"sqlite:///{tmp_path}/i.db", smtp_url=sink.url)
        engine = make_engine(settings.database_url)
        migrate(engine)
        self.store = Store(engine)
        examples = load_rules_file(EXAMPLES)
        self.store.write(rule_store.upsert_rules, examples.templates, examples.rules)
        assert examples.loyalty is not None
        self.store.write(rule_store.set_loyalty_program, examples.loyalty, "test")
        self.dispatcher = Dispatcher(settings, self.store, producer=None)
        self.intake = IntakeStep(self.store, settings.tracking_secret.get_secret_value())
        self.sink, self.version, self.orders = sink, 0, 0

    async def event(self, at: datetime, type_: str, name: str | None = None, /, **properties: Any) -> None:
        """Ada does something at ``at``; the dispatcher runs right after, and a minute later."""
        self.version += 1
        self.orders += name == "Order Completed"
        trigger = TriggerEvent(message_id=f"m{self.version}", type=type_, event=name, timestamp=at,
                               properties=properties)  # fmt: skip
        profile = CustomerProfile(
            customer_id="ada", user_id="ada", email="ada@example.com", traits={"firstName": "Ada"},
            first_seen=MONDAY, last_seen=at, event_count=self.version, orders=self.orders, version=self.version,
            computed=ComputedTraits(as_of=at),
        )  # fmt: skip
        change = ProfileChanged(customer_id="ada", profile=profile, changed=["traits"], triggers=[trigger],
                                emitted_at=at)  # fmt: skip
        rules, _ = self.store.read(rule_store.enabled_rules)
        with self.store.sessions.begin() as session:
            self.intake.profile_change(
                session, change, rules, self.store.read(rule_store.loyalty_program), at, Intake()
            )
        await self.run_until(at + timedelta(minutes=1))

    async def run_until(self, at: datetime) -> None:
        await self.dispatcher.tick(at - timedelta(seconds=59))
        await self.dispatcher.tick(at)

    def subjects(self) -> list[str]:
        mails = [email.message_from_bytes(p.read_bytes(), policy=email_policy.default) for p in self.sink.messages()]
        return [str(m["Subject"]) for m in mails]


async def test_a_customers_first_week_through_the_shipped_examples(tmp_path, smtp_sink) -> None:
    week = Week(tmp_path, smtp_sink)
    day = [MONDAY + timedelta(days=n) for n in range(7)]

    # Monday: she signs up at 9, puts a product in her cart at 9:30 and leaves.
    await week.event(day[0].replace(hour=9), "identify")
    await week.event(day[0].replace(hour=9, minute=30), "track", "Product Added", product_id="p1", name="Blue mug")
    await week.run_until(day[0].replace(hour=10, minute=31))
    assert week.subjects() == ["Welcome, Ada!", "You left something in your cart"], (
        "the welcome does not use up the marketing cap: the same day's cart reminder goes out"
    )
    # Tuesday: her first order.
    await week.event(day[1].replace(hour=12), "track", "Order Completed", order_id="o1", total=80)
    # Wednesday: a detractor's NPS answer, with a comment, opens a case that carries it.
    await week.event(day[2].replace(hour=14), "track", "NPS Answered", survey_id="s", score=4,
                     comment="The parcel arrived late")  # fmt: skip
    [case] = week.store.read(case_store.cases, customer_id="ada")
    assert [n.text for n in week.store.read(case_store.case, case.id)[1]] == ["The parcel arrived late"]
    # Thursday: a large order takes her to gold: a reward code and its email.
    await week.event(day[3].replace(hour=11), "track", "Order Completed", order_id="o2", total=2000)
    assert week.store.read(loyalty_store.ledger, "ada")[0] == 80 + 20 + 2000
    # Friday: part of it is refunded (she drops to silver); Saturday: a new order, gold again.
    await week.event(day[4].replace(hour=10), "track", "Order Refunded", order_id="o2", total=500)
    await week.event(day[5].replace(hour=10), "track", "Order Completed", order_id="o3", total=600)
    # Sunday: a cart, then the order within the hour: no reminder.
    await week.event(day[6].replace(hour=15), "track", "Product Added", product_id="p2")
    await week.event(day[6].replace(hour=15, minute=20), "track", "Order Completed", order_id="o4", total=30)
    await week.run_until(day[6].replace(hour=17))

    balance, _, rewards = week.store.read(loyalty_store.ledger, "ada")
    assert balance == 80 + 20 + 2000 - 500 + 600 + 30
    assert [r.reward for r in rewards] == ["gold-welcome-voucher"], "the gold reward is collected once"
    assert sorted(week.subjects()) == sorted(
        [
            "Welcome, Ada!",
            "You left something in your cart",
            "Thank you for your order o1",
            "Thank you for your order o2",
            "You reached Gold: here is your reward",
            "Thank you for your order o3",
            "Thank you for your order o4",
        ]
    )
    outcomes = {(a.rule_id, a.status, a.reason) for a in week.store.read(action_store.recent, kind="email", limit=1000)}
    assert ("cart-reminder", "cancelled", "wait cancelled by Order Completed (m9)") in outcomes
    assert not [o for o in outcomes if o[1] in ("suppressed", "failed")], "nothing was refused or failed"
