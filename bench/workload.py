"""A seeded generator of realistic Segment events for the benchmarks.

The mix follows a web shop: about 60 % page and product views and clicks, 8 % carts and
orders, 25 % email events (sends, deliveries, opens, clicks, bounces, unsubscribes), 2 % survey
and NPS answers and 5 % identify and alias calls, with about 1 % invalid events (each of a kind
the collector must reject). Customers are drawn with Zipf-skewed activity (``zipf_s``): a few
are very active, most come rarely. Events look like what analytics.js sends: a ``messageId``, an
anonymous id (and a user id once the visitor is known), a client ``timestamp`` and a small
``context``. The same seed always gives the same events, so two runs send the same bytes.

Bodies are written one per line (compact JSON has no raw newline), which is what the wrk
script in ``bench/wrk/`` reads.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

SHOP = "https://shop.example.com"
START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
LOCALES = ("de-DE", "en-GB", "fr-FR", "nl-NL", "en-US")
CATEGORIES = ("shirts", "trousers", "shoes", "bags", "jackets", "socks")
LIBRARY = {"name": "analytics.js", "version": "5.2.0"}
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"

Event = dict[str, Any]


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Customer:
    anonymous_id: str
    user_id: str | None
    email: str | None
    locale: str
    ip: str


@dataclass(frozen=True, slots=True)
class Kind:
    """One sort of event in the mix: its Segment type, its share, how to make one."""

    name: str
    type: str
    weight: float
    make: Callable[[Workload, Customer], Event]
    valid: bool = True


class Workload:
    """Draws events from the mix; ``invalid_ratio`` of them are invalid."""

    def __init__(self, seed: int = 42, customers: int = 5000, invalid_ratio: float = 0.01, zipf_s: float = 0.8) -> None:
        self.rng = random.Random(seed)
        self.invalid_ratio = invalid_ratio
        self.clock = START
        self.customers = [self._customer(i) for i in range(customers)]
        self._activity = list(itertools.accumulate(1 / (rank**zipf_s) for rank in range(1, customers + 1)))
        self.products = [f"sku-{i:05d}" for i in range(2000)]

    # --- the mix -----------------------------------------------------------------------

    def kinds(self) -> list[Kind]:
        """Valid kinds with their share of valid traffic, then the invalid kinds."""
        return [
            Kind("page", "page", 37.0, Workload._page),
            Kind("product_viewed", "track", 15.0, Workload._product_viewed),
            Kind("element_clicked", "track", 8.0, Workload._element_clicked),
            Kind("product_added", "track", 6.0, Workload._product_added),
            Kind("order_completed", "track", 2.0, Workload._order_completed),
            Kind("email_sent", "track", 8.5, Workload._email_sent),
            Kind("email_delivered", "track", 8.0, Workload._email_delivered),
            Kind("email_opened", "track", 5.0, Workload._email_opened),
            Kind("email_link_clicked", "track", 2.5, Workload._email_link_clicked),
            Kind("email_bounced", "track", 0.6, Workload._email_bounced),
            Kind("unsubscribed", "track", 0.4, Workload._unsubscribed),
            Kind("nps_answered", "track", 1.2, Workload._nps_answered),
            Kind("survey_answered", "track", 0.8, Workload._survey_answered),
            Kind("identify", "identify", 4.0, Workload._identify),
            Kind("alias", "alias", 1.0, Workload._alias),
            Kind("invalid_no_identity", "page", 1.0, Workload._invalid_no_identity, valid=False),
            Kind("invalid_no_event_name", "track", 1.0, Workload._invalid_no_event_name, valid=False),
            Kind("invalid_no_product_id", "track", 1.0, Workload._invalid_no_product_id, valid=False),
            Kind("invalid_negative_total", "track", 1.0, Workload._invalid_negative_total, valid=False),
            Kind("invalid_timestamp", "track", 1.0, Workload._invalid_timestamp, valid=False),
        ]

    def events(self, count: int, event_type: str | None = None) -> list[Event]:
        """``count`` events of the mix (only of ``event_type`` when given, e.g. ``track``)."""
        kinds = [k for k in self.kinds() if event_type is None or k.type == event_type]
        valid = [k for k in kinds if k.valid]
        invalid = [k for k in kinds if not k.valid]
        weights = [k.weight for k in valid]
        out = []
        for _ in range(count):
            if invalid and self.rng.random() < self.invalid_ratio:
                kind = self.rng.choice(invalid)
            else:
                kind = self.rng.choices(valid, weights)[0]
            out.append(kind.make(self, self.rng.choices(self.customers, cum_weights=self._activity)[0]))
        return out

    def batch_body(self, size: int = 50) -> bytes:
        """One ``POST /v1/batch`` body of ``size`` events, as a server-side SDK relays them: what all
        events share (the library, the browser) is in the batch's ``context``."""
        events = self.events(size)
        sent_at = _iso(self.clock + timedelta(milliseconds=120))
        return orjson.dumps(
            {"batch": events, "context": {"library": LIBRARY, "userAgent": USER_AGENT}, "sentAt": sent_at}
        )

    def batch_bodies(self, count: int, size: int = 50) -> list[bytes]:
        return [self.batch_body(size) for _ in range(count)]

    def single_bodies(self, count: int, event_type: str = "track") -> list[bytes]:
        """Bodies for ``POST /v1/<event_type>``: one event each, with its own ``sentAt``."""
        bodies = []
        for event in self.events(count, event_type):
            event["context"] |= {"library": LIBRARY, "userAgent": USER_AGENT}
            event["sentAt"] = _iso(self.clock + timedelta(milliseconds=80))
            bodies.append(orjson.dumps(event))
        return bodies

    # --- building blocks ---------------------------------------------------------------

    def _customer(self, index: int) -> Customer:
        known = self.rng.random() < 0.4
        return Customer(
            anonymous_id=f"anon-{self.rng.getrandbits(64):016x}",
            user_id=f"u-{index:06d}" if known else None,
            email=f"customer{index}@example.com" if known else None,
            locale=self.rng.choice(LOCALES),
            ip=f"203.0.{self.rng.randrange(256)}.{self.rng.randrange(1, 255)}",
        )

    def _envelope(self, customer: Customer, event_type: str) -> Event:
        self.clock += timedelta(milliseconds=self.rng.randrange(1, 400))
        event: Event = {"type": event_type, "messageId": str(uuid.UUID(int=self.rng.getrandbits(128), version=4))}
        event["anonymousId"] = customer.anonymous_id
        if customer.user_id is not None:
            event["userId"] = customer.user_id
        event["timestamp"] = _iso(self.clock)
        event["context"] = {"locale": customer.locale, "ip": customer.ip}
        return event

    def _product(self) -> tuple[str, str, float]:
        product = self.rng.choice(self.products)
        return product, self.rng.choice(CATEGORIES), round(self.rng.uniform(5, 250), 2)

    def _page(self, customer: Customer) -> Event:
        event = self._envelope(customer, "page")
        product, category, _ = self._product()
        path = self.rng.choice(("/", f"/c/{category}", f"/p/{product}", f"/p/{product}", "/cart"))
        event["name"] = "Product" if path.startswith("/p/") else "Shop"
        event["properties"] = {"path": path, "url": SHOP + path, "referrer": SHOP + "/"}
        return event

    def _track(self, customer: Customer, name: str, properties: Event) -> Event:
        event = self._envelope(customer, "track")
        event["event"] = name
        event["properties"] = properties
        return event

    def _product_viewed(self, customer: Customer) -> Event:
        product, category, price = self._product()
        props = {"product_id": product, "category": category, "price": price, "currency": "EUR"}
        return self._track(customer, "Product Viewed", props)

    def _element_clicked(self, customer: Customer) -> Event:
        element = self.rng.choice(("add-to-cart", "size-guide", "newsletter", "search"))
        return self._track(customer, "Element Clicked", {"element_id": element, "page_url": SHOP + "/"})

    def _product_added(self, customer: Customer) -> Event:
        product, _, price = self._product()
        props = {"product_id": product, "cart_id": f"cart-{customer.anonymous_id[-6:]}", "quantity": 1, "price": price}
        return self._track(customer, "Product Added", props | {"currency": "EUR"})

    def _order_completed(self, customer: Customer) -> Event:
        lines = [self._product() for _ in range(self.rng.randrange(1, 4))]
        products = [{"product_id": p, "quantity": 1, "price": price} for p, _, price in lines]
        total = round(sum(price for _, _, price in lines), 2)
        props = {"order_id": f"o-{self.rng.getrandbits(40):010x}", "total": total, "currency": "EUR"}
        return self._track(customer, "Order Completed", props | {"products": products})

    def _email_props(self) -> Event:
        return {"email_id": f"m-{self.rng.getrandbits(48):012x}", "campaign_id": "c-weekly"}

    def _email_opened(self, customer: Customer) -> Event:
        return self._track(customer, "Email Opened", self._email_props())

    def _email_link_clicked(self, customer: Customer) -> Event:
        return self._track(customer, "Email Link Clicked", self._email_props() | {"link_url": SHOP + "/sale"})

    def _email_delivered(self, customer: Customer) -> Event:
        return self._track(customer, "Email Delivered", self._email_props())

    def _email_sent(self, customer: Customer) -> Event:
        return self._track(customer, "Email Sent", self._email_props() | {"subject": "This week's picks"})

    def _email_bounced(self, customer: Customer) -> Event:
        bounce = self.rng.choice(("hard", "soft", "soft"))
        return self._track(customer, "Email Bounced", self._email_props() | {"bounce_type": bounce})

    def _unsubscribed(self, customer: Customer) -> Event:
        return self._track(customer, "Unsubscribed", self._email_props() | {"list_id": "weekly"})

    def _nps_answered(self, customer: Customer) -> Event:
        props = {
            "survey_id": "nps-2026q4",
            "score": self.rng.choices(range(11), (1, 1, 1, 2, 2, 4, 6, 9, 14, 12, 8))[0],
        }
        return self._track(customer, "NPS Answered", props)

    def _survey_answered(self, customer: Customer) -> Event:
        answer = self.rng.choice(("price", "choice", "delivery", "service"))
        return self._track(customer, "Survey Answered", {"survey_id": "why-us", "question_id": "q1", "answer": answer})

    def _alias(self, customer: Customer) -> Event:
        event = self._envelope(customer, "alias")
        event.pop("anonymousId", None)
        event["userId"] = customer.user_id or f"u-new-{self.rng.getrandbits(32):08x}"
        event["previousId"] = customer.anonymous_id
        return event

    def _identify(self, customer: Customer) -> Event:
        event = self._envelope(customer, "identify")
        if customer.user_id is None:
            event["userId"] = f"u-new-{self.rng.getrandbits(32):08x}"
        event["traits"] = {"email": customer.email or f"{event['userId']}@example.com", "plan": "newsletter"}
        return event

    def _invalid_no_identity(self, customer: Customer) -> Event:
        event = self._page(customer)
        event.pop("anonymousId", None)
        event.pop("userId", None)
        return event

    def _invalid_no_event_name(self, customer: Customer) -> Event:
        event = self._element_clicked(customer)
        del event["event"]
        return event

    def _invalid_no_product_id(self, customer: Customer) -> Event:
        event = self._product_viewed(customer)
        del event["properties"]["product_id"]
        return event

    def _invalid_negative_total(self, customer: Customer) -> Event:
        event = self._order_completed(customer)
        event["properties"]["total"] = -event["properties"]["total"]
        return event

    def _invalid_timestamp(self, customer: Customer) -> Event:
        event = self._product_viewed(customer)
        event["timestamp"] = "yesterday"
        return event


def write_bodies(path: Path, bodies: Iterable[bytes]) -> int:
    """One body per line; returns how many were written."""
    count = 0
    with path.open("wb") as handle:
        for body in bodies:
            if b"\n" in body:
                raise ValueError("a body contains a newline")
            handle.write(body + b"\n")
            count += 1
    return count


def describe(bodies: list[bytes], events_per_body: int) -> dict[str, float]:
    """Sizes of a body set, for the report."""
    total = sum(len(b) for b in bodies)
    return {
        "bodies": len(bodies),
        "events_per_body": events_per_body,
        "mean_body_bytes": round(total / len(bodies), 1),
        "mean_event_bytes": round(total / len(bodies) / events_per_body, 1),
    }
