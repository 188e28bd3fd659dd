"""A small shop, generated from a seed, and an oracle of every report in plain Python.

:func:`generate` draws about 300 customers over the 122 days before :data:`NOW`: visits,
product funnels (finished, dropped, out of order, past the window), orders with their revenue
and campaign, anonymous visitors stitched to the user they became (some never, one merged then
unmerged), refunds, the emails we sent and what became of them, answers, cases, loyalty points
and rewards, and two segments. :meth:`Shop.store` writes it to ClickHouse as the aggregator
does (events; identity links, segment membership and profiles written directly).

The oracle functions (``trends``, ``funnels``, …) read :class:`Shop` only: each computes a
report's rows from the report's definition in words (its ``DEFINITION``), never from its SQL.
They return the rows as the report shapes them, so that tests compare whole rows.
"""

from __future__ import annotations

import json
import random
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

NOW = datetime(2026, 6, 3, tzinfo=UTC)
"""The shop's present: events stop before it."""
FIRST = datetime(2026, 2, 1, tzinfo=UTC)
"""The shop's first day (a Sunday)."""
SINCE, UNTIL = date(2026, 3, 2), date(2026, 5, 31)
"""The range most tests ask for: a Monday to a Sunday, 13 whole weeks."""
CAMPAIGNS = (
    {"name": "spring-sale", "source": "newsletter", "medium": "email"},
    {"name": "retarget", "source": "facebook", "medium": "cpc"},
    {"name": "brand", "source": "google", "medium": "cpc"},
    {"name": "partner", "source": "partner-blog"},  # no medium: its channel is its source
    {"source": "newsletter", "medium": "email"},  # no name: no campaign
)
BROADCASTS = (
    ("cmp-feb", datetime(2026, 2, 27, 9, tzinfo=UTC)), ("cmp-march", datetime(2026, 3, 10, 9, tzinfo=UTC)),
    ("cmp-april", datetime(2026, 4, 14, 9, tzinfo=UTC)), ("cmp-may", datetime(2026, 5, 12, 9, tzinfo=UTC)),
    ("cmp-may-reminder", datetime(2026, 5, 15, 9, tzinfo=UTC)),
)  # fmt: skip
LINKS = ("https://shop.example.com/sale", "https://shop.example.com/new", "https://shop.example.com/blog")
PAGES = (("Home", "shop"), ("Category", "shop"), ("Product", "shop"), ("Cart", "checkout"), ("Guide", "blog"))
CATEGORIES = ("shoes", "bags", "hats", "socks")
PAYMENTS = ("card", "card", "card", "paypal", "giftcard")
SENT_BY_US = frozenset({
    "Email Sent", "Email Delivered", "Email Bounced", "Case Opened", "Case Escalated", "Case Updated", "Case Resolved",
    "Loyalty Points Awarded", "Reward Issued", "Message Suppressed", "Message Deferred", "Message Failed",
    "Action Completed", "Inventory Updated",
})  # fmt: skip
"""What we (the interaction service, the email channel, the shop's back office) report about a
customer: not something the customer did."""
CALL_TYPES = ("page", "screen", "identify", "group", "alias")
MACHINE_OPENS_ARE_ACTIVITY = False
"""Whether a machine open (a mail client's privacy prefetch) is the customer's activity, as
lifecycle and retention read it today; this oracle's reading of "not the messages we sent them"
says no (see test_a_machine_open_is_not_activity)."""
FOREVER = datetime(2200, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class Event:
    message_id: str
    customer_id: str
    user_id: str
    anonymous_id: str
    type: str
    event: str
    timestamp: datetime
    properties: dict[str, Any] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    category: str = ""

    def named(self, name: str) -> bool:
        """Whether this is the event ``name`` (a track event's name, or a call type)."""
        return self.type == name if name in CALL_TYPES else self.type == "track" and self.event == name


@dataclass
class Shop:
    events: list[Event]
    links: list[tuple[str, str, str, int]]
    """identity_links rows: anonymous id, user id, state, version."""
    changes: list[tuple[str, str, str, datetime]]
    """Segment entries and exits: segment, customer, ``entered`` or ``exited``, when (in order)."""
    profiles: list[tuple[str, dict[str, Any], str, int]]
    """profiles rows: customer, traits, merged_into, version."""

    def __post_init__(self) -> None:
        latest: dict[str, tuple[int, str, str]] = {}
        for anonymous, user, state, version in self.links:
            if anonymous not in latest or version > latest[anonymous][0]:
                latest[anonymous] = (version, user, state)
        self.stitched = {a: user for a, (_, user, state) in latest.items() if state == "merged"}
        versions: dict[tuple[str, str], int] = defaultdict(int)
        self.membership: list[tuple[str, str, int, int, datetime]] = []
        """segment_membership rows: segment, customer, is_member, version, changed at."""
        self.spans: dict[tuple[str, str], list[tuple[datetime, datetime]]] = defaultdict(list)
        """When each customer was a member of each segment: [entered, left)."""
        for segment, customer, change, at in self.changes:
            versions[segment, customer] += 1
            self.membership.append((segment, customer, int(change == "entered"), versions[segment, customer], at))
            spans = self.spans[segment, customer]
            if spans and spans[-1][1] == FOREVER:
                spans[-1] = (spans[-1][0], at)
            if change == "entered":
                spans.append((at, FOREVER))
        self.segments: dict[str, set[str]] = defaultdict(set)
        for (segment, customer), spans in self.spans.items():
            if spans and spans[-1][1] == FOREVER:
                self.segments[segment].add(customer)
        newest: dict[str, tuple[int, dict[str, Any], str]] = {}
        for customer, traits, merged_into, version in self.profiles:
            if customer not in newest or version > newest[customer][0]:
                newest[customer] = (version, traits, merged_into)
        self.traits = {c: traits for c, (_, traits, merged) in newest.items() if not merged}

    def customer(self, e: Event) -> str:
        """The customer an event belongs to: its user when its anonymous id was stitched."""
        return self.stitched.get(e.customer_id, e.customer_id)

    def member(self, customer: str, segment: str | None) -> bool:
        return segment is None or customer in self.segments[segment]

    def segments_of(self, customer: str) -> list[str]:
        return sorted(s for s, members in self.segments.items() if customer in members)

    def segments_at(self, customer: str, moment: datetime) -> list[str]:
        """The segments ``customer`` was a member of at ``moment``."""
        return sorted({s for (s, c), spans in self.spans.items() if c == customer
                       for start, left in spans if start <= moment < left})  # fmt: skip

    def store(self, client: Any, database: str) -> None:
        """Write the shop to ``database`` (migrated already)."""
        columns = ["message_id", "customer_id", "user_id", "anonymous_id", "type", "event", "timestamp",
                   "received_at", "properties", "traits", "context", "source_partition", "source_offset", "name",
                   "category"]  # fmt: skip
        rows = [
            [e.message_id, e.customer_id, e.user_id, e.anonymous_id, e.type, e.event, e.timestamp,
             e.timestamp + timedelta(seconds=1), json.dumps(e.properties), json.dumps(e.traits), json.dumps(e.context),
             0, offset, e.name, e.category]
            for offset, e in enumerate(self.events)
        ]  # fmt: skip
        for start in range(0, len(rows), 10_000):
            client.insert(f"{database}.events", rows[start : start + 10_000], column_names=columns)
        client.insert(
            f"{database}.identity_links",
            [[a, u, state, f"link-{a}-{v}", FIRST, "aggregator", v] for a, u, state, v in self.links],
            column_names=["anonymous_id", "user_id", "state", "message_id", "changed_at", "actor", "version"],
        )
        client.insert(
            f"{database}.segment_membership",
            [[s, c, m, at, "test", v] for s, c, m, v, at in self.membership],
            column_names=["segment_id", "customer_id", "is_member", "changed_at", "reason", "version"],
        )
        client.insert(
            f"{database}.segment_changes",
            [[at, s, s, c, change, "event", "test", f"sc-{i}"] for i, (s, c, change, at) in enumerate(self.changes)],
            column_names=["at", "segment_id", "segment_name", "customer_id", "change", "trigger", "reason", "event_id"],
        )
        client.insert(
            f"{database}.profiles",
            [[c, c, json.dumps(t), FIRST, FIRST, m, v] for c, t, m, v in self.profiles],
            column_names=["customer_id", "user_id", "traits", "first_seen", "last_seen", "merged_into", "version"],
        )


# --- the generator -------------------------------------------------------------------------


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.events: list[Event] = []
        self.taken: set[datetime] = set()
        self.orders = 0
        self.balance: dict[str, int] = {}
        self.rewarded: set[str] = set()
        self.cases = 0

    def at(self, moment: datetime) -> datetime:
        """``moment`` to the millisecond, moved on until no other event has it (steps never tie)."""
        moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        while moment in self.taken:
            moment += timedelta(milliseconds=1)
        self.taken.add(moment)
        return moment

    def add(self, who: tuple[str, str, str], kind: str, event: str, moment: datetime, exact: bool = False,
            **fields: Any) -> Event | None:  # fmt: skip
        """An event of ``who`` (customer id, user id, anonymous id); none at or after NOW."""
        if moment >= NOW or moment < FIRST:
            return None
        if exact and moment.microsecond % 1000:
            raise ValueError(f"{moment} is not to the millisecond")
        stamp = moment if exact else self.at(moment)
        if exact:
            self.taken.add(stamp)
        e = Event(f"m-{len(self.events):06d}", *who, kind, event, stamp, **fields)
        self.events.append(e)
        return e

    def minutes(self, low: float, high: float) -> timedelta:
        return timedelta(seconds=self.rng.uniform(low * 60, high * 60))

    def visit(self, who: tuple[str, str, str], moment: datetime, shopper: bool) -> datetime:
        """A visit: pages, perhaps a product funnel; returns when it ended."""
        rng = self.rng
        for _ in range(rng.randint(1, 4)):
            page, category = rng.choice(PAGES)
            self.add(who, "page", "", moment, name=page, category=category,
                     properties={"path": f"/{page.lower()}", "title": page})  # fmt: skip
            moment += self.minutes(0.2, 4)
        if rng.random() < 0.08:  # out of order: added to the cart from a link, viewed afterwards
            self.add(who, "track", "Product Added", moment, properties={"product_id": "p-1", "category": "bags"})
            moment += self.minutes(1, 30)
        if rng.random() < 0.6:
            moment = self.funnel(who, moment, shopper)
        return moment

    def funnel(self, who: tuple[str, str, str], moment: datetime, shopper: bool) -> datetime:
        rng = self.rng
        category = rng.choice(CATEGORIES)
        context = {"campaign": dict(rng.choice(CAMPAIGNS))} if rng.random() < 0.35 else {}
        viewed = self.add(who, "track", "Product Viewed", moment, context=context,
                          properties={"product_id": f"p-{rng.randint(1, 30)}", "category": category})  # fmt: skip
        if viewed is None or rng.random() < 0.4:
            return moment
        moment += self.minutes(0.5, 20) if rng.random() < 0.85 else timedelta(days=rng.uniform(1, 9))
        self.add(who, "track", "Product Added", moment, properties={"product_id": "p-1", "category": category})
        if not shopper or rng.random() < 0.35:
            return moment
        late = rng.random()
        if late < 0.75:
            moment += self.minutes(1, 90)
        elif late < 0.9:
            moment = viewed.timestamp + timedelta(days=rng.uniform(3, 10))
        elif late < 0.95:  # at the window's very end: still in (7 days)
            moment = viewed.timestamp + timedelta(days=7)
            if moment in self.taken:
                return moment
            return self.order(who, moment, exact=True)
        else:  # a millisecond past it
            moment = viewed.timestamp + timedelta(days=7, milliseconds=1)
            if moment in self.taken:
                return moment
            return self.order(who, moment, exact=True)
        return self.order(who, moment)

    def order(self, who: tuple[str, str, str], moment: datetime, exact: bool = False) -> datetime:
        rng = self.rng
        self.orders += 1
        total = round(rng.uniform(15, 240), 2)
        properties: dict[str, Any] = {"order_id": f"o-{self.orders:05d}", "total": total, "currency": "EUR",
                                      "items": rng.randint(1, 4)}  # fmt: skip
        if rng.random() < 0.7:
            properties["revenue"] = round(total * 0.8, 2)
        if rng.random() < 0.85:
            properties["payment"] = rng.choice(PAYMENTS)
        context = {"campaign": dict(rng.choice(CAMPAIGNS))} if rng.random() < 0.35 else {}
        placed = self.add(who, "track", "Order Completed", moment, exact=exact, properties=properties, context=context)
        if placed is None:
            return moment
        self.ledger(who, moment + timedelta(seconds=2), int(total), "order", order_id=properties["order_id"])
        user = who[1] or who[0]
        if self.balance[user] >= 500 and user not in self.rewarded:
            self.rewarded.add(user)
            kind = rng.choice(("coupon", "free_shipping"))
            self.add(who, "track", "Reward Issued", moment + timedelta(seconds=3),
                     properties={"reward_id": f"rw-{user}", "kind": kind})  # fmt: skip
            if kind == "coupon":  # redeemed
                self.ledger(who, moment + timedelta(seconds=4), -200, "redemption")
        if rng.random() < 0.08:
            later = moment + timedelta(days=rng.uniform(1, 12))
            refund = total if rng.random() < 0.6 else round(total / 2, 2)
            self.add(who, "track", "Order Refunded", later,
                     properties={"order_id": properties["order_id"], "total": refund, "currency": "EUR"})  # fmt: skip
            self.ledger(who, later + timedelta(seconds=2), -int(refund), "refund")
        return moment

    def ledger(self, who: tuple[str, str, str], moment: datetime, points: int, reason: str, **more: Any) -> None:
        """A loyalty ledger entry: the points, the balance after them and its tier."""
        user = who[1] or who[0]
        self.balance[user] = self.balance.get(user, 0) + points
        self.add(who, "track", "Loyalty Points Awarded", moment,
                 properties={"points": points, "balance": self.balance[user], "tier": _tier(self.balance[user]),
                             "reason": reason, **more})  # fmt: skip

    def email(self, user: str, moment: datetime, email_id: str, **origin: str) -> None:
        """An email we sent and what became of it (some events missing, as providers lose them)."""
        rng, who = self.rng, (user, user, "")
        base: dict[str, Any] = {"email_id": email_id, **origin}
        if rng.random() < 0.9:
            base["variant"] = rng.choice(("A", "B"))
        if rng.random() < 0.97:  # the provider's first word is sometimes the delivery
            self.add(
                who, "track", "Email Sent", moment, properties=dict(base, template=origin.get("rule_id", "broadcast"))
            )
        if rng.random() < 0.07:
            kind = "hard" if rng.random() < 0.6 else "soft"
            self.add(
                who, "track", "Email Bounced", moment + timedelta(seconds=40), properties=dict(base, bounce_type=kind)
            )
            return
        delivered = moment + timedelta(seconds=rng.uniform(5, 120))
        if rng.random() < 0.95:
            self.add(who, "track", "Email Delivered", delivered, properties=dict(base))
        if rng.random() < 0.12:
            self.add(who, "track", "Email Opened", delivered + timedelta(seconds=3),
                     properties=dict(base, machine_open=True))  # fmt: skip
        if rng.random() < 0.45:
            opened = delivered + timedelta(hours=rng.uniform(0.1, 48))
            if rng.random() < 0.92:
                self.add(who, "track", "Email Opened", opened, properties=dict(base, machine_open=False))
            if rng.random() < 0.45:
                for _ in range(1 if rng.random() < 0.8 else 2):
                    click = self.add(who, "track", "Email Link Clicked", opened + self.minutes(0.1, 5),
                                     properties=dict(base, link_url=rng.choice(LINKS)))  # fmt: skip
                    opened = click.timestamp if click else opened + timedelta(minutes=5)
                if rng.random() < 0.35:  # the click led to an order, within the window or after it
                    chance = rng.random()
                    later = timedelta(hours=rng.uniform(0.2, 30)) if chance < 0.8 else timedelta(days=8)
                    if 0.9 < chance < 0.95:  # at the window's very end (7 days): still the click's
                        later = timedelta(days=7)
                    exact = later == timedelta(days=7) and opened + later not in self.taken
                    self.order(who, opened + later, exact=exact)
            if rng.random() < 0.03:
                self.add(who, "track", "Unsubscribed", opened + self.minutes(1, 10), properties=dict(base))
            elif rng.random() < 0.01:
                self.add(who, "track", "Email Marked as Spam", opened + self.minutes(1, 10), properties=dict(base))

    def case(self, user: str, at: datetime) -> None:
        """A customer-service case: opened (by a rule or by hand), perhaps re-prioritised, escalated,
        resolved, re-opened and resolved again."""
        rng, who = self.rng, (user, user, "")
        self.cases += 1
        base: dict[str, Any] = {
            "case_id": f"case-{self.cases:04d}",
            "priority": rng.choice(("low", "normal", "high", "urgent")),
        }
        rule = rng.choice(("r-complaint", "r-complaint", "r-late-delivery", ""))
        if rule:
            base["rule_id"] = rule
        self.add(who, "track", "Case Opened", at, properties=dict(base, status="open"))
        if rng.random() < 0.2:
            at += timedelta(hours=rng.uniform(1, 10))
            self.add(who, "track", "Case Updated", at, properties=dict(base, priority="urgent", status="open"))
        if rng.random() < 0.3:
            at += timedelta(hours=rng.uniform(1, 30))
            self.add(who, "track", "Case Escalated", at, properties=dict(base, status="escalated"))
        if rng.random() < 0.8:
            at += timedelta(hours=rng.uniform(1, 72))
            self.add(who, "track", "Case Resolved", at, properties=dict(base, status="resolved"))
            if rng.random() < 0.15:
                at += timedelta(days=rng.uniform(2, 5))
                self.add(who, "track", "Case Resolved", at, properties=dict(base, status="resolved"))


def _tier(balance: int) -> str:
    return "gold" if balance >= 1000 else "silver" if balance >= 400 else "bronze"


def generate(seed: int = 19, customers: int = 300, visitors: int = 30) -> Shop:
    """The shop: ``customers`` users (some first seen anonymously) and ``visitors`` anonymous
    visitors who never signed in."""
    b = _Builder(seed)
    rng = b.rng
    links: list[tuple[str, str, str, int]] = []
    profiles: list[tuple[str, dict[str, Any], str, int]] = []
    signed_up: dict[str, datetime] = {}
    for i in range(customers):
        user = f"u-{i:03d}"
        signup = FIRST + timedelta(days=rng.uniform(0, 120))
        shopper = rng.random() < 0.75
        anonymous = ""
        if rng.random() < 0.4:
            anonymous = f"anon-{i:03d}"
            moment = signup - timedelta(days=rng.uniform(0, 6))
            for _ in range(rng.randint(1, 2)):
                moment = b.visit((anonymous, "", anonymous), moment, shopper=rng.random() < 0.3)
                moment += timedelta(hours=rng.uniform(1, 30))
            fate = rng.random()
            if fate < 0.75:
                links.append((anonymous, user, "merged", 1))
                profiles.append((anonymous, {}, user, 1))
            elif fate < 0.85:
                links += [(anonymous, user, "merged", 1), (anonymous, user, "unmerged", 2)]
            signup = max(signup, moment + timedelta(minutes=5))
        if rng.random() < 0.06:  # imported subscriber: our newsletter reached them before their first visit
            b.email(user, signup - timedelta(days=rng.uniform(2, 20)), f"e-import-{user}", campaign_id="cmp-import")
        traits: dict[str, Any] = {"email": f"{user}@example.com"}
        if rng.random() < 0.85:
            traits["plan"] = rng.choice(("free", "free", "pro", "team"))
        b.add((user, user, anonymous), "identify", "", signup, traits=traits)
        if signup < NOW:
            signed_up[user] = signup
        profiles.append((user, traits, "", 1))
        if "plan" in traits and rng.random() < 0.1:  # a later version of the profile wins
            profiles.append((user, dict(traits, plan="pro"), "", 2))
        who = (user, user, anonymous)
        b.email(user, signup + b.minutes(1, 3), f"e-welcome-{user}", rule_id="r-welcome")
        moment = b.visit(who, signup + b.minutes(4, 10), shopper)
        loyal = rng.random()
        while True:
            gap = rng.expovariate(1 / (4 if loyal < 0.3 else 14 if loyal < 0.7 else 40))
            moment = moment + timedelta(days=gap, hours=rng.uniform(0, 12))
            if moment >= NOW:
                break
            b.visit(who, moment, shopper)
        if rng.random() < 0.25:
            at = signup + timedelta(days=rng.uniform(1, 60))
            survey = rng.choice(("nps", "nps", "nps-app"))
            for _ in range(1 if rng.random() < 0.85 else 2):  # some answer twice
                b.add(who, "track", "NPS Answered", at, properties={"survey_id": survey, "score": rng.randint(0, 10)})
                at += timedelta(days=rng.uniform(0.1, 10))
        if rng.random() < 0.2:
            at = signup + timedelta(days=rng.uniform(1, 60))
            answer: Any = rng.choice(("Fast delivery", "Too expensive", "Fast delivery", 4, 5))
            question = rng.choice(("q1", "q1", "q2"))
            b.add(who, "track", "Survey Answered", at,
                  properties={"survey_id": "csat", "question_id": question, "answer": answer})  # fmt: skip
        if rng.random() < 0.2:
            b.case(user, signup + timedelta(days=rng.uniform(1, 60)))
    for email_id, (campaign, moment) in enumerate(BROADCASTS):
        for user, signup in signed_up.items():
            if signup < moment and rng.random() < 0.5:
                b.email(user, moment + timedelta(seconds=rng.uniform(0, 600)), f"e-{campaign}-{email_id}-{user}",
                        campaign_id=campaign)  # fmt: skip
    for j in range(visitors):
        visitor = f"anon-v{j:02d}"
        moment = FIRST + timedelta(days=rng.uniform(0, 121))
        b.visit((visitor, "", visitor), moment, shopper=rng.random() < 0.3)
        if rng.random() < 0.3:
            b.visit((visitor, "", visitor), moment + timedelta(days=rng.uniform(1, 20)), shopper=False)
    _edges(b)
    orders: dict[str, int] = defaultdict(int)
    second_orders: dict[str, datetime] = {}  # VIPs from their second order on
    shop = Shop(b.events, links, [], profiles)
    for e in sorted(b.events, key=lambda e: e.timestamp):
        if e.named("Order Completed"):
            orders[shop.customer(e)] += 1
            if orders[shop.customer(e)] == 2:
                second_orders[shop.customer(e)] = e.timestamp + timedelta(seconds=5)
    changes = [("vip", c, "entered", at) for c, at in sorted(second_orders.items())]
    for user, signup in sorted(signed_up.items()):
        if rng.random() < 0.35:
            entered = signup + timedelta(minutes=2)
            changes.append(("newsletter", user, "entered", entered))
            fate = rng.random()
            if fate < 0.15:  # left since
                changes.append(("newsletter", user, "exited", entered + timedelta(days=rng.uniform(1, 60))))
            elif fate < 0.25:  # left and came back
                left = entered + timedelta(days=rng.uniform(1, 30))
                changes += [("newsletter", user, "exited", left),
                            ("newsletter", user, "entered", left + timedelta(days=rng.uniform(1, 30)))]  # fmt: skip
    changes = [c for c in changes if c[3] < NOW]
    return Shop(b.events, links, changes, profiles)


def _edges(b: _Builder) -> None:
    """Customers on the range's edges: the first and the last millisecond of it, and the one after."""
    start = datetime.combine(SINCE, datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(UNTIL + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    for user, moment in (("u-edge-first", start), ("u-edge-last", end - timedelta(milliseconds=1)),
                         ("u-edge-after", end)):  # fmt: skip
        who = (user, user, "")
        b.add(who, "identify", "", moment - timedelta(days=20), traits={"plan": "free"})
        b.add(who, "track", "Product Viewed", moment, exact=True, properties={"category": "hats"})
        b.add(who, "track", "Product Added", moment + timedelta(hours=1), properties={"category": "hats"})
        b.add(who, "track", "Order Completed", moment + timedelta(days=2),
              properties={"order_id": f"o-{user}", "total": 50.0, "items": 1, "payment": "card"})  # fmt: skip
    month = datetime(2026, 4, 1, tzinfo=UTC)
    for user, moment in (("u-edge-march", month - timedelta(milliseconds=1)), ("u-edge-april", month)):
        # the last millisecond of March and the first of April (and of a Wednesday)
        b.add((user, user, ""), "page", "", moment, exact=True, name="Home", category="shop")
        b.add((user, user, ""), "page", "", moment + timedelta(days=35), name="Home", category="shop")
    for user, age in (("u-rfm-30d", timedelta(days=30)), ("u-rfm-30d-1ms", timedelta(days=30, milliseconds=1))):
        # an order exactly 30 days before the range's end (recency 5), and one a millisecond older (4)
        b.add((user, user, ""), "track", "Order Completed", end - age, exact=True,
              properties={"order_id": f"o-{user}", "total": 20.0})  # fmt: skip


def event(customer: str, name: str, at: datetime, **properties: Any) -> Event:
    """One event of a known customer (``page``, ``identify``: those calls), for small examples."""
    kind = name if name in CALL_TYPES else "track"
    return Event(f"x-{customer}-{name}-{at.isoformat()}", customer, customer, "", kind, "" if kind != "track" else name,
                 at, properties)  # fmt: skip


# --- the oracle ----------------------------------------------------------------------------


def day_start(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)


def period_of(moment: datetime, interval: str) -> datetime:
    """The start of the period holding ``moment`` (weeks from Monday, UTC)."""
    if interval == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = day_start(moment.date())
    if interval == "week":
        return day - timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    return day


def shift(start: datetime, interval: str, n: int) -> datetime:
    """The period ``n`` periods after the one starting at ``start``."""
    if interval == "month":
        months = start.year * 12 + start.month - 1 + n
        return start.replace(year=months // 12, month=months % 12 + 1)
    step = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(days=7)}[interval]
    return start + n * step


def all_periods(since: date, until: date, interval: str) -> list[datetime]:
    first, last = period_of(day_start(since), interval), day_start(until + timedelta(days=1))
    found = []
    while first < last:
        found.append(first)
        first = shift(first, interval, 1)
    return found


def label(start: datetime, interval: str) -> str:
    return start.strftime({"hour": "%Y-%m-%dT%H:00", "month": "%Y-%m"}.get(interval, "%Y-%m-%d"))


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _in_range(e: Event, since: date, until: date) -> bool:
    return day_start(since) <= e.timestamp < day_start(until + timedelta(days=1))


def _value(value: Any) -> str:
    if value is None:
        return "(none)"
    return value if isinstance(value, str) else json.dumps(value)


def trends(shop: Shop, since: date = SINCE, until: date = UNTIL, segment: str | None = None,
           event: str = "Order Completed", measure: str = "events", interval: str = "day", breakdown: str = "none",
           key: str | None = None, groups: int = 5) -> dict[str, Any]:  # fmt: skip
    """The trends report's rows, its groups' totals, and who did what per cell (for drills)."""
    hits: list[tuple[datetime, str, str]] = []  # (period, group, customer); one per event and group
    for e in shop.events:
        if not e.named(event) or not _in_range(e, since, until):
            continue
        customer = shop.customer(e)
        if not shop.member(customer, segment):
            continue
        if breakdown == "property":
            values = [_value(e.properties.get(key or ""))]
        elif breakdown == "trait":
            values = [_value(shop.traits.get(customer, {}).get(key or ""))]
        elif breakdown == "segment":
            values = shop.segments_of(customer) or ["(no segment)"]
        else:
            values = [""]
        hits += [(period_of(e.timestamp, interval), v, customer) for v in values]

    def measured(found: Iterable[tuple[datetime, str, str]]) -> int:
        found = list(found)
        return len(found) if measure == "events" else len({c for _, _, c in found})

    by_value = defaultdict(list)
    for hit in hits:
        by_value[hit[1]].append(hit)
    ranked = sorted(by_value, key=lambda v: (-measured(by_value[v]), v))
    top = set(ranked[:groups]) if breakdown != "none" else {""}
    grouped = [(p, v if v in top else "other", c) for p, v, c in hits]
    totals: dict[str, int] = {}
    for g in {v for _, v, _ in grouped}:
        totals[g] = measured(h for h in grouped if h[1] == g)
    order = sorted(totals, key=lambda g: (g == "other", -totals[g], g)) if breakdown != "none" else [""]
    keys = {g: f"g{i}" for i, g in enumerate(order)}
    cells: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for p, g, c in grouped:
        cells[label(p, interval), g][c] += 1
    rows = []
    for start in all_periods(since, until, interval):
        name = label(start, interval)
        row: dict[str, Any] = {"period": name, "cell": name}
        for g in order:
            row[keys[g]] = measured(h for h in grouped if h[1] == g and h[0] == start)
        if breakdown != "none":
            row["cells"] = {keys[g]: f"{name}/{g}" for g in order if g != "other"}
        rows.append(row)
    return {"rows": rows, "totals": totals if breakdown != "none" else {}, "cells": cells, "order": order}


def funnels(shop: Shop, since: date = SINCE, until: date = UNTIL, segment: str | None = None,
            steps: tuple[str, ...] = ("Product Viewed", "Product Added", "Order Completed"), window_days: int = 7,
            breakdown: str = "none") -> dict[str, Any]:  # fmt: skip
    """The funnel's rows (keyed by group and step) and each group's customers per step, with when
    they reached it."""
    window = timedelta(days=window_days)
    by_customer: dict[str, list[Event]] = defaultdict(list)
    for e in shop.events:
        by_customer[shop.customer(e)].append(e)
    reached: dict[str, list[datetime | None]] = {}
    campaign: dict[str, str] = {}
    for customer, events in by_customer.items():
        if not shop.member(customer, segment):
            continue
        events.sort(key=lambda e: e.timestamp)
        entering = next((e for e in events if e.named(steps[0]) and _in_range(e, since, until)), None)
        if entering is None:
            continue
        times: list[datetime | None] = [entering.timestamp]
        for step in steps[1:]:
            before = times[-1]
            found = None
            if before is not None:
                found = next((e.timestamp for e in events if e.named(step) and e.timestamp > before
                              and e.timestamp <= entering.timestamp + window), None)  # fmt: skip
            times.append(found)
        reached[customer] = times
        campaign[customer] = entering.context.get("campaign", {}).get("name") or "(no campaign)"
    members: dict[str, list[str]] = defaultdict(list)
    for customer in reached:
        if breakdown == "campaign":
            names = [campaign[customer]]
        elif breakdown == "segment":
            names = shop.segments_of(customer) or ["(no segment)"]
        else:
            names = ["all"]
        for name in names:
            members[name].append(customer)
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    who: dict[tuple[str, int], dict[str, tuple[datetime, datetime]]] = {}
    for group, customers in members.items():
        entered = len(customers)
        before = entered
        for i, step in enumerate(steps):
            got = [c for c in customers if reached[c][i] is not None]
            gaps = [(reached[c][i] - reached[c][i - 1]).total_seconds() for c in got] if i else []  # type: ignore[operator]
            rows[group, i + 1] = {
                "group": group, "step": i + 1, "event": step, "customers": len(got),
                "conversion": _share(len(got), entered), "from_previous": _share(len(got), before),
                "dropped": before - len(got), "median_seconds": statistics.median(gaps) if gaps else None,
                "cell": f"{i + 1}/{group}",
            }  # fmt: skip
            who[group, i + 1] = {c: (reached[c][0], reached[c][i]) for c in got}  # type: ignore[misc]
            before = len(got)
    return {"rows": rows, "customers": who}


def own_activity(e: Event) -> bool:
    """Whether ``e`` is something the customer did (not a message we sent them, nor our reports about them)."""
    if e.type == "track" and e.event in SENT_BY_US:
        return False
    return MACHINE_OPENS_ARE_ACTIVITY or not (e.named("Email Opened") and e.properties.get("machine_open"))


def first_events(shop: Shop, which: str) -> dict[str, datetime]:
    """Each customer's first own activity (``activity``: not the messages we sent them) or first order."""
    firsts: dict[str, datetime] = {}
    for e in shop.events:
        if which == "activity" and not own_activity(e):
            continue
        if which == "order" and not e.named("Order Completed"):
            continue
        customer = shop.customer(e)
        if customer not in firsts or e.timestamp < firsts[customer]:
            firsts[customer] = e.timestamp
    return firsts


def order_amount(e: Event) -> float:
    """An order's revenue: its ``revenue``, else its ``total``."""
    return float(e.properties["revenue"] if "revenue" in e.properties else e.properties.get("total", 0))


def retention(shop: Shop, since: date = SINCE, until: date = UNTIL, segment: str | None = None,
              cohort: str = "first_seen", interval: str = "week", periods: int = 8,
              returning: str = "any") -> dict[str, Any]:  # fmt: skip
    """Retention's rows and each cohort's customers per period (``customers[label][n]``)."""
    firsts = first_events(shop, "order" if cohort == "first_purchase" else "activity")
    shown = {label(s, interval): s for s in all_periods(since, until, interval) if s.date() >= since}
    cohorts: dict[str, set[str]] = defaultdict(set)
    for customer, moment in firsts.items():
        if shop.member(customer, segment):
            cohorts[label(period_of(moment, interval), interval)].add(customer)
    active: dict[str, set[datetime]] = defaultdict(set)
    revenue: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for e in shop.events:
        customer = shop.customer(e)
        own = own_activity(e)
        counted = own if returning == "any" else e.named(returning)
        if counted:
            active[customer].add(period_of(e.timestamp, interval))
        if e.named("Order Completed"):
            revenue[customer].append((period_of(e.timestamp, interval), order_amount(e)))
    rows, who = [], {}
    for name, start in shown.items():
        members = cohorts.get(name, set())
        size = len(members)
        row: dict[str, Any] = {"cohort": name, "customers": size, "cell": f"{name}/0", "cells": {}}
        who[name] = {0: set(members)}
        running = 0.0
        for n in range(periods + 1):
            period = shift(start, interval, n)
            if n:
                back = {c for c in members if period in active[c]}
                who[name][n] = back
                row[f"p{n}"] = _share(len(back), size)
                row["cells"][f"p{n}"] = f"{name}/{n}"
            running += sum(amount for c in members for p, amount in revenue[c] if p == period)
            row[f"ltv{n}"] = _share(running, size)
        row["revenue"] = round(running, 2)
        row["ltv"] = _share(running, size)
        rows.append(row)
    return {"rows": rows, "customers": who}


def lifecycle(shop: Shop, since: date = SINCE, until: date = UNTIL, segment: str | None = None,
              interval: str = "week") -> dict[str, Any]:  # fmt: skip
    """Lifecycle's rows and each period's customers per state (``customers[label][state]``)."""
    active: dict[str, set[datetime]] = defaultdict(set)
    for e in shop.events:
        if not own_activity(e):
            continue
        customer = shop.customer(e)
        if shop.member(customer, segment):
            active[customer].add(period_of(e.timestamp, interval))
    rows, who = [], {}
    for start in all_periods(since, until, interval):
        name, previous = label(start, interval), shift(start, interval, -1)
        states: dict[str, set[str]] = {s: set() for s in ("new", "returning", "reactivated", "lapsed")}
        for customer, periods in active.items():
            if start in periods:
                if min(periods) == start:
                    states["new"].add(customer)
                elif previous in periods:
                    states["returning"].add(customer)
                else:
                    states["reactivated"].add(customer)
            elif previous in periods:
                states["lapsed"].add(customer)
        row: dict[str, Any] = {"period": name, **{s: len(c) for s, c in states.items()}}
        row["active"] = row["new"] + row["returning"] + row["reactivated"]
        row["cells"] = {s: f"{name}/{s}" for s in states}
        row["cell"] = f"{name}/active"
        rows.append(row)
        who[name] = states | {"active": states["new"] | states["returning"] | states["reactivated"]}
    return {"rows": rows, "customers": who}


# --- rfm, revenue ------------------------------------------------------------------------------

RECENCY_DAYS, FREQUENCY_ORDERS = (30, 60, 120, 240), (2, 3, 5, 10)
"""The scales the RFM definition states."""


def _orders(shop: Shop, segment: str | None, name: str = "Order Completed") -> list[tuple[str, Event]]:
    found = [(shop.customer(e), e) for e in shop.events if e.named(name)]
    return sorted(((c, e) for c, e in found if shop.member(c, segment)), key=lambda ce: ce[1].timestamp)


def _rfm_cell(orders: list[Event], moment: datetime) -> tuple[int, int] | None:
    """The (recency, frequency) scores as of ``moment`` of a customer's orders (none without one)."""
    before = [o for o in orders if o.timestamp < moment]
    if not before:
        return None
    age = moment - before[-1].timestamp
    recency = 5 - sum(age > timedelta(days=d) for d in RECENCY_DAYS)
    return recency, 1 + sum(len(before) >= n for n in FREQUENCY_ORDERS)


def rfm(shop: Shop, since: date = SINCE, until: date = UNTIL, segment: str | None = None) -> dict[str, Any]:
    from ecrm_aggregator.computed_traits import RFM_SEGMENTS

    def name(r: int, f: int) -> str:
        return next(n for n, rs, fs in RFM_SEGMENTS if r in rs and f in fs)

    end, then = day_start(until + timedelta(days=1)), day_start(since + timedelta(days=1))
    by_customer: dict[str, list[Event]] = defaultdict(list)
    for customer, e in _orders(shop, segment):
        by_customer[customer].append(e)
    cells: dict[tuple[int, int], dict[str, float]] = defaultdict(dict)
    """Each grid cell's customers with their revenue."""
    revenue: dict[tuple[int, int], float] = defaultdict(float)
    moves: dict[tuple[str, str], int] = defaultdict(int)
    for customer, orders in by_customer.items():
        now = _rfm_cell(orders, end)
        if now is None:
            continue
        cells[now][customer] = sum(order_amount(o) for o in orders if o.timestamp < end)
        revenue[now] += cells[now][customer]
        before = _rfm_cell(orders, then)
        moves["no_orders_yet" if before is None else name(*before), name(*now)] += 1
    total = sum(len(c) for c in cells.values())
    rows = [
        {"recency": r, "frequency": f, "cell_name": name(r, f), "customers": len(cells[r, f]),
         "share": _share(len(cells[r, f]), total), "revenue": round(revenue[r, f], 2), "cell": f"{r}/{f}"}
        for r in range(5, 0, -1) for f in range(5, 0, -1)
    ]  # fmt: skip
    return {"rows": rows, "moves": dict(moves), "customers": cells, "total": total}


def revenue(shop: Shop, since: date = SINCE, until: date = UNTIL, segment: str | None = None, interval: str = "day",
            by: str = "none", groups: int = 8) -> dict[str, Any]:  # fmt: skip
    """Revenue's rows (one per group, the largest revenue first), its summary, its chart (a line
    for each of the first ``groups`` groups, the rest in 'other') and each group's customers
    (with their orders and revenue)."""
    shown = groups
    placed = [(c, e) for c, e in _orders(shop, segment) if _in_range(e, since, until)]
    grouped: dict[str, list[tuple[str, Event]]] = defaultdict(list)
    for customer, e in placed:
        campaign = e.context.get("campaign", {})
        if by == "segment":
            names = shop.segments_at(customer, e.timestamp) or ["(no segment)"]
        elif by == "channel":
            names = [campaign.get("medium") or campaign.get("source") or "(direct)"]
        elif by == "campaign":
            names = [campaign.get("name") or "(none)"]
        else:
            names = ["all"]
        for group in names:
            grouped[group].append((customer, e))
    total = sum(order_amount(e) for _, e in placed)
    rows, who = [], {}
    for group, orders in grouped.items():
        amount = sum(order_amount(e) for _, e in orders)
        rows.append({"group": group, "revenue": round(amount, 2), "orders": len(orders),
                     "customers": len({c for c, _ in orders}), "average_order_value": _share(amount, len(orders)),
                     "share": _share(amount, total) if by != "segment" else None, "cell": group})  # fmt: skip
        found: dict[str, dict[str, float]] = defaultdict(lambda: {"orders": 0, "revenue": 0.0})
        for c, e in orders:
            found[c]["orders"] += 1
            found[c]["revenue"] += order_amount(e)
        who[group] = dict(found)
    rows.sort(key=lambda r: (-r["revenue"], r["group"]))
    lines = [r["group"] for r in rows[:shown]]
    chart: dict[str, dict[str, float]] = {g: defaultdict(float) for g in lines}
    for group, orders in grouped.items():
        for _, e in orders:
            line = group if group in lines else "other"
            chart.setdefault(line, defaultdict(float))[label(period_of(e.timestamp, interval), interval)] += (
                order_amount(e)
            )
    x = [label(p, interval) for p in all_periods(since, until, interval)]
    series = {g: [round(chart[g].get(p, 0.0), 2) for p in x] for g in chart}
    end = day_start(until + timedelta(days=1))
    ordered = {c for c, _ in placed}
    counts: dict[str, int] = defaultdict(int)
    for c, e in _orders(shop, segment):
        if e.timestamp < end:
            counts[c] += 1
    refunds = [e for _, e in _orders(shop, segment, "Order Refunded") if _in_range(e, since, until)]
    summary = {
        "revenue": round(total, 2), "orders": len(placed), "customers": len(ordered),
        "average_order_value": _share(total, len(placed)),
        "refunded": round(sum(float(e.properties["total"]) for e in refunds), 2),
        "repeat_purchase_rate": _share(sum(counts[c] >= 2 for c in ordered), len(ordered)),
    }  # fmt: skip
    return {"rows": rows, "summary": summary, "customers": who, "chart": {"x": x, "series": series}}


# --- campaigns, satisfaction, service, loyalty -------------------------------------------------

EMAIL_EVENTS = ("Email Sent", "Email Delivered", "Email Opened", "Email Link Clicked", "Email Bounced",
                "Email Marked as Spam", "Unsubscribed")  # fmt: skip
MESSAGE_STATES = ("sent", "delivered", "opened", "clicked", "bounced_hard", "bounced_soft", "unsubscribed",
                  "complained", "machine_opened")  # fmt: skip


def campaigns(shop: Shop, since: date = SINCE, until: date = UNTIL, segment: str | None = None, by: str = "source",
              window_days: int = 7, attribution: str = "last_touch") -> dict[str, Any]:  # fmt: skip
    """The campaign report's rows, and each group's customers per state (``customers[group][state]``)."""
    messages: dict[str, list[Event]] = defaultdict(list)
    for e in shop.events:
        if e.type == "track" and e.event in EMAIL_EVENTS and e.properties.get("email_id"):
            messages[e.properties["email_id"]].append(e)
    shown: dict[str, dict[str, Any]] = {}
    for email_id, events in messages.items():
        first = min(events, key=lambda e: e.timestamp)
        customer = shop.customer(first)
        if not _in_range(first, since, until) or not shop.member(customer, segment):
            continue
        props = {k: v for e in events for k, v in e.properties.items()}
        kinds = {e.event for e in events}
        human = any(e.event == "Email Opened" and not e.properties.get("machine_open") for e in events)
        machine = any(e.event == "Email Opened" and e.properties.get("machine_open") for e in events)
        clicked = "Email Link Clicked" in kinds
        opened = human or clicked  # a click proves an open
        delivered = "Email Delivered" in kinds or opened or machine  # an open proves a delivery
        bounces = {e.properties.get("bounce_type") for e in events if e.event == "Email Bounced"}
        source = (f"rule:{props['rule_id']}" if props.get("rule_id") else
                  f"campaign:{props['campaign_id']}" if props.get("campaign_id") else "(untagged)")  # fmt: skip
        shown[email_id] = {
            "customer": customer, "source": source, "variant": props.get("variant") or "(none)",
            "states": {"sent": True, "delivered": delivered, "opened": opened, "clicked": clicked,
                       "bounced_hard": "hard" in bounces and not delivered,
                       "bounced_soft": bool(bounces - {"hard"}) and "hard" not in bounces and not delivered,
                       "unsubscribed": "Unsubscribed" in kinds, "complained": "Email Marked as Spam" in kinds,
                       "machine_opened": machine and not opened},
        }  # fmt: skip
    window = timedelta(days=window_days)
    clicks: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for e in shop.events:
        if e.named("Email Link Clicked"):
            clicks[shop.customer(e)].append((e.timestamp, e.properties["email_id"]))
    credited: dict[str, list[float]] = defaultdict(list)
    for customer, order in _orders(shop, None):
        touched = sorted(c for c in clicks[customer] if c[0] <= order.timestamp <= c[0] + window)
        if touched:
            _, email_id = touched[-1] if attribution == "last_touch" else touched[0]
            credited[email_id].append(order_amount(order))

    def group_of(m: dict[str, Any]) -> str:
        return m["source"] if by == "source" else f"{m['source']} / {m['variant']}"

    if by == "link":
        links: dict[str, list[Event]] = defaultdict(list)
        for e in shop.events:
            if e.named("Email Link Clicked") and e.properties["email_id"] in shown:
                links[e.properties["link_url"]].append(e)
        rows = [{"link": link, "clicks": len(found), "clicked": len({e.properties["email_id"] for e in found}),
                 "customers": len({shop.customer(e) for e in found}), "cell": f"link/{link}"}
                for link, found in links.items()]  # fmt: skip
        rows.sort(key=lambda r: (-r["clicked"], r["link"]))
        return {"rows": rows, "customers": {r["link"]: {shop.customer(e) for e in links[r["link"]]} for r in rows}}
    grouped: dict[str, list[str]] = defaultdict(list)
    for email_id, m in shown.items():
        grouped[group_of(m)].append(email_id)
    rows, who = [], {}
    for group, ids in grouped.items():
        row: dict[str, Any] = {"group": group}
        for state in MESSAGE_STATES:
            row[state] = sum(shown[i]["states"][state] for i in ids)
        row["conversions"] = sum(len(credited[i]) for i in ids)
        row["revenue"] = round(sum(sum(credited[i], 0.0) for i in ids), 2)
        row["delivery_rate"] = _share(row["delivered"], row["sent"])
        row["open_rate"] = _share(row["opened"], row["delivered"])
        row["click_rate"] = _share(row["clicked"], row["delivered"])
        row["click_to_open"] = _share(row["clicked"], row["opened"])
        row["unsubscribe_rate"] = _share(row["unsubscribed"], row["delivered"])
        row["cell"] = f"{group}/sent"
        row["cells"] = {s: f"{group}/{s}" for s in MESSAGE_STATES}
        rows.append(row)
        who[group] = {}
        for state in MESSAGE_STATES:
            messages_of: dict[str, int] = defaultdict(int)
            for i in ids:
                if shown[i]["states"][state]:
                    messages_of[shown[i]["customer"]] += 1
            who[group][state] = dict(messages_of)
    rows.sort(key=lambda r: (-r["sent"], r["group"]))
    return {"rows": rows, "customers": who}


def satisfaction(shop: Shop, since: date = SINCE, until: date = UNTIL, segment: str | None = None,
                 interval: str = "week", survey: str | None = None,
                 question: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Satisfaction's rows, the chosen question's answers by value, and who answered per cell."""
    answers = [(c, e) for c, e in _orders(shop, segment, "NPS Answered")
               if _in_range(e, since, until) and (survey is None or e.properties["survey_id"] == survey)]  # fmt: skip

    def kind(score: int) -> str:
        return "promoters" if score >= 9 else "passives" if score >= 7 else "detractors"

    rows, who = [], {}
    for start in all_periods(since, until, interval):
        name = label(start, interval)
        found = [(c, e) for c, e in answers if period_of(e.timestamp, interval) == start]
        counts = {"answers": len(found), **{g: 0 for g in ("promoters", "passives", "detractors")}}
        for _, e in found:
            counts[kind(e.properties["score"])] += 1
        n, p, d = counts["answers"], counts["promoters"], counts["detractors"]
        nps = 100 * (p - d) / n if n else None
        error = 1.96 * 100 * ((p / n + d / n - (p / n - d / n) ** 2) / n) ** 0.5 if n else None
        rows.append({"period": name, **counts, "nps": nps, "margin": error, "cell": f"{name}/answers",
                     "cells": {g: f"{name}/{g}" for g in ("promoters", "passives", "detractors")}})  # fmt: skip
        who[name] = {}
        for g in ("answers", "promoters", "passives", "detractors"):
            theirs: dict[str, list[Event]] = defaultdict(list)  # each customer's answers of the group
            for c, e in found:
                if g == "answers" or kind(e.properties["score"]) == g:
                    theirs[c].append(e)
            who[name][g] = {
                c: (len(es), max(es, key=lambda e: e.timestamp).properties["score"]) for c, es in theirs.items()
            }
    spread: dict[str, int] = defaultdict(int)
    for e in shop.events:
        customer = shop.customer(e)
        if (e.named("Survey Answered") and _in_range(e, since, until) and shop.member(customer, segment)
                and e.properties["survey_id"] == survey and e.properties["question_id"] == question):  # fmt: skip
            spread[_value(e.properties["answer"])] += 1
    answered = [{"answer": a, "count": n} for a, n in sorted(spread.items(), key=lambda an: (-an[1], an[0]))]
    return {"rows": rows, "answers": answered, "customers": who}


def service(shop: Shop, since: date = SINCE, until: date = UNTIL, segment: str | None = None, by: str = "priority",
            interval: str = "day") -> dict[str, Any]:  # fmt: skip
    """Service's rows (one per group), the chart's opened and resolved per period, and who per cell."""
    cases: dict[str, list[Event]] = defaultdict(list)
    for e in shop.events:
        if e.type == "track" and e.event.startswith("Case ") and e.properties.get("case_id"):
            cases[e.properties["case_id"]].append(e)
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for events in cases.values():
        opened = next((e for e in sorted(events, key=lambda e: e.timestamp) if e.event == "Case Opened"), None)
        if opened is None or not _in_range(opened, since, until) or not shop.member(shop.customer(opened), segment):
            continue
        resolutions = sorted(e.timestamp for e in events if e.event == "Case Resolved")
        group = opened.properties["priority"] if by == "priority" else opened.properties.get("rule_id") or "(by hand)"
        grouped[group].append({
            "customer": shop.customer(opened), "case": opened.properties["case_id"],
            "hours": (resolutions[0] - opened.timestamp).total_seconds() / 3600 if resolutions else None,
            "breached": any(e.event == "Case Escalated" for e in events),
        })  # fmt: skip
    rows, who = [], {}
    for group, found in grouped.items():
        resolved = [c["hours"] for c in found if c["hours"] is not None]
        breached = sum(c["breached"] for c in found)
        rows.append({
            "group": group, "opened": len(found), "resolved": len(resolved),
            "resolved_share": _share(len(resolved), len(found)),
            "median_hours": statistics.median(resolved) if resolved else None, "breached": breached,
            "breach_rate": _share(breached, len(found)), "cell": f"{group}/opened",
            "cells": {"resolved": f"{group}/resolved", "breached": f"{group}/breached"},
        })  # fmt: skip
        who[group] = {}
        for what, wanted in (("opened", lambda c: True), ("resolved", lambda c: c["hours"] is not None),
                             ("breached", lambda c: c["breached"])):  # fmt: skip
            theirs: dict[str, list[str]] = defaultdict(list)
            for case in found:
                if wanted(case):
                    theirs[case["customer"]].append(case["case"])
            who[group][what] = {c: sorted(cases) for c, cases in theirs.items()}
    rows.sort(key=lambda r: (-r["opened"], r["group"]))
    flow = {label(s, interval): {"opened": 0, "resolved": 0} for s in all_periods(since, until, interval)}
    for e in shop.events:
        counted = e.named("Case Opened") or e.named("Case Resolved")
        if counted and _in_range(e, since, until) and shop.member(shop.customer(e), segment):
            flow[label(period_of(e.timestamp, interval), interval)][e.event.split()[1].lower()] += 1
    return {"rows": rows, "flow": flow, "customers": who}


def loyalty(shop: Shop, since: date = SINCE, until: date = UNTIL, segment: str | None = None,
            interval: str = "week") -> dict[str, Any]:  # fmt: skip
    """Loyalty's rows and the customers given points per period."""
    entries = [(shop.customer(e), e) for e in shop.events if e.named("Loyalty Points Awarded")
               and shop.member(shop.customer(e), segment)]  # fmt: skip
    rewards = [e for e in shop.events if e.named("Reward Issued") and shop.member(shop.customer(e), segment)]
    end = day_start(until + timedelta(days=1))
    starts = all_periods(since, until, interval)
    tiers_at: dict[str, dict[str, int]] = {}
    for start in starts:
        ends = min(shift(start, interval, 1), end)
        latest: dict[str, Event] = {}
        for customer, e in entries:
            if e.timestamp < ends and (customer not in latest or e.timestamp > latest[customer].timestamp):
                latest[customer] = e
        counted: dict[str, int] = defaultdict(int)
        for e in latest.values():
            counted[e.properties.get("tier") or "(none)"] += 1
        tiers_at[label(start, interval)] = counted
    names = sorted({t for counted in tiers_at.values() for t in counted})
    rows, who = [], {}
    for start in starts:
        name = label(start, interval)
        here = [(c, e) for c, e in entries if _in_range(e, since, until) and period_of(e.timestamp, interval) == start]
        kinds: dict[str, int] = defaultdict(int)
        for e in rewards:
            if _in_range(e, since, until) and period_of(e.timestamp, interval) == start:
                kinds[e.properties.get("kind") or "(none)"] += 1
        row: dict[str, Any] = {
            "period": name, "issued": sum(e.properties["points"] for _, e in here if e.properties["points"] > 0),
            "taken_back": -sum(e.properties["points"] for _, e in here if e.properties["points"] < 0),
            "rewards": sum(kinds.values()), "rewards_by_kind": dict(kinds), "cell": f"{name}/issued",
        }  # fmt: skip
        for tier in names:
            row[f"tier:{tier}"] = tiers_at[name].get(tier, 0)
        rows.append(row)
        given: dict[str, int] = defaultdict(int)
        for c, e in here:
            if e.properties["points"] > 0:
                given[c] += e.properties["points"]
        who[name] = dict(given)
    return {"rows": rows, "tiers": names, "customers": who}
