"""Recommendations computed in the real ClickHouse engine from a generated shop's history.

The offline quality check: on a seeded shop (customers with a favourite category, skewed
product popularity), each customer's last purchase is held out; item-to-item
recommendations must find it in their top 10 more often than the popularity baseline.
"""

import random
import time
from datetime import UTC, datetime, timedelta

import pytest

from ecrm_aggregator.clickhouse_store import ClickHouseStore, connect
from ecrm_aggregator.decode import PositionedEvent
from ecrm_aggregator.item_similarity import SimilarityRefresher, refresh_item_similarity
from ecrm_aggregator.migrate import migrate
from ecrm_aggregator.rows import event_row
from ecrm_aggregator.settings import AggregatorSettings
from ecrm_interaction.delivery.recommendations import CustomerItems, Recommendations, rank
from ecrm_schemas.validation import validate_event

pytestmark = pytest.mark.clickhouse
CATEGORIES, PER_CATEGORY, CUSTOMERS = 5, 12, 300
START = datetime.now(UTC) - timedelta(days=20)


def _event(customer: str, name: str, at: datetime, properties: dict, n: int) -> dict:
    return {
        "type": "track",
        "event": name,
        "userId": customer,
        "messageId": f"{customer}-{n}",
        "timestamp": at.isoformat(),
        "receivedAt": at.isoformat(),
        "properties": properties,
    }


def _product(rng: random.Random, category: int) -> str:
    weights = [1 / (j + 1) for j in range(PER_CATEGORY)]
    return f"c{category}-p{rng.choices(range(PER_CATEGORY), weights)[0]}"


def _category(rng: random.Random, favourite: int) -> int:
    return favourite if rng.random() < 0.85 else rng.randrange(CATEGORIES)


def shop_history(seed: int = 7) -> tuple[list[dict], dict[str, str]]:
    """Events of every customer, and each customer's held-out last purchase."""
    rng = random.Random(seed)
    events, held_out = [], {}
    for c in range(CUSTOMERS):
        customer, favourite = f"shopper{c}", rng.randrange(CATEGORIES)
        at, n = START + timedelta(minutes=c), 0
        for _ in range(6):
            n += 1
            events.append(
                _event(
                    customer,
                    "Product Viewed",
                    at + timedelta(minutes=n),
                    {"product_id": _product(rng, _category(rng, favourite))},
                    n,
                )
            )
        bought: list[str] = []
        while len(bought) < 4:
            product = _product(rng, _category(rng, favourite))
            if product not in bought:
                bought.append(product)
        for product in bought[:-1]:
            n += 1
            events.append(
                _event(
                    customer,
                    "Order Completed",
                    at + timedelta(minutes=n),
                    {"order_id": f"{customer}-o{n}", "total": 10, "products": [{"product_id": product, "quantity": 1}]},
                    n,
                )
            )
        held_out[customer] = bought[-1]
    return events, held_out


@pytest.fixture
def shop(clickhouse_server, clickhouse_database):
    client = connect(AggregatorSettings(clickhouse_url=clickhouse_server.url))
    migrate(client, clickhouse_database)
    events, held_out = shop_history()
    store = ClickHouseStore(client, clickhouse_database)
    rows = [event_row(PositionedEvent(validate_event(e), 0, i)) for i, e in enumerate(events)]
    store.insert_events(rows, "shop")
    assert refresh_item_similarity(client, clickhouse_database) > 0
    recommendations = Recommendations(client, clickhouse_database, cache_s=0)
    yield recommendations, held_out, store
    client.command(f"DROP DATABASE IF EXISTS {clickhouse_database}")
    client.close()


def test_item_to_item_beats_the_popularity_baseline_on_held_out_purchases(shop) -> None:
    recommendations, held_out, _ = shop
    popular = recommendations.popular()
    hits = baseline = 0
    for customer, product in held_out.items():
        mine = recommendations.customer_items(customer)
        top = [r["product_id"] for r in recommendations.for_customer(customer, 10)]
        hits += product in top
        baseline += product in [p for p in popular if p not in mine.bought][:10]
    hit_rate, baseline_rate = hits / len(held_out), baseline / len(held_out)
    print(f"hit-rate@10: item-to-item {hit_rate:.3f}, popularity {baseline_rate:.3f}")
    assert hit_rate > baseline_rate + 0.1, (hit_rate, baseline_rate)


def test_bought_and_out_of_stock_products_are_never_recommended(shop) -> None:
    recommendations, _, store = shop
    customer = "shopper0"
    before = recommendations.for_customer(customer, 10)
    mine = recommendations.customer_items(customer)
    assert before and not {r["product_id"] for r in before} & mine.bought
    gone = before[0]["product_id"]
    stock = validate_event(
        {
            "type": "track",
            "event": "Inventory Updated",
            "userId": "warehouse",
            "messageId": "stock-1",
            "timestamp": datetime.now(UTC).isoformat(),
            "receivedAt": datetime.now(UTC).isoformat(),
            "properties": {"product_id": gone, "quantity": 0},
        }
    )
    store.insert_events([event_row(PositionedEvent(stock, 0, 10**6))], "stock")
    after = [r["product_id"] for r in recommendations.for_customer(customer, 10)]
    assert gone not in after and len(after) == 10


def test_a_new_customer_gets_popular_products_and_recently_viewed_is_kept(shop) -> None:
    recommendations, _, _ = shop
    fresh = recommendations.for_customer("nobody-yet", 5)
    assert [r["source"] for r in fresh] == ["popular"] * 5
    assert fresh[0]["product_id"] == recommendations.popular()[0]
    viewed = recommendations.recently_viewed("shopper1")
    assert 1 <= len(viewed) <= 6
    recent = recommendations.recent_events("shopper1", 5)
    assert len(recent) == 5 and recent[0]["event"] == "Order Completed"  # the newest first
    assert [e["timestamp"] for e in recent] == sorted((e["timestamp"] for e in recent), reverse=True)


def test_ranking_combines_weights_and_fills_with_popular_products() -> None:
    mine = CustomerItems({"a": 3.0, "b": 1.0}, bought={"a"}, recently_viewed=["b"])
    similar = [("a", "x", 0.5), ("b", "x", 0.5), ("a", "y", 0.9), ("b", "a", 1.0)]
    picks = rank(similar, mine, popular=["a", "z", "x"], out_of_stock={"y"}, limit=3)
    assert [(p["product_id"], p["source"]) for p in picks] == [("x", "similar"), ("z", "popular")]
    assert picks[0]["score"] == 2.0


def test_the_aggregators_refresher_writes_a_new_generation_the_reader_then_uses(shop) -> None:
    recommendations, _, _ = shop
    before = recommendations._generation()
    refresher = SimilarityRefresher(recommendations.client, recommendations.db, interval_s=3600)
    refresher.start()
    deadline = time.monotonic() + 60
    while recommendations._generation() == before and time.monotonic() < deadline:
        time.sleep(0.2)
    refresher.stop()
    refresher.join(10)
    assert recommendations._generation() > before and not refresher.is_alive()
    assert recommendations.for_customer("shopper0", 3)
