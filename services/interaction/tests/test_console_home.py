"""The console's home page: the relational figures always, the warehouse's when ClickHouse is
configured (else said to be unavailable), each linking to its detail page."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from ecrm_aggregator.migrate import migrate as migrate_clickhouse
from ecrm_interaction.api.app import create_app
from ecrm_interaction.api.services.warehouse import Warehouse
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage import users
from ecrm_interaction.storage.cases import CaseOpening, open_case
from ecrm_interaction.storage.store import Store, make_engine, migrate


def _figure(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}".*?<span class="figure">([^<]*)</span>', html, re.S)
    assert found, element_id
    return found.group(1)


def _open_cases(store: Store) -> None:
    now = datetime.now(UTC)
    store.write(open_case, CaseOpening("c1", "Late parcel", "high", timedelta(hours=-1)), now)  # overdue
    store.write(open_case, CaseOpening("c2", "Invoice", "low", timedelta(days=2)), now)


async def test_home_shows_the_relational_figures_and_says_the_rest_is_unavailable(console_app, console_as) -> None:
    _app, store = console_app
    _open_cases(store)
    viewer = await console_as("viewer")
    home = await viewer.get("/console")
    assert home.status_code == 200
    assert "ClickHouse is not configured" in home.text
    assert _figure(home.text, "fig-cases-open") == "2"
    assert _figure(home.text, "fig-cases-overdue") == "1"
    assert _figure(home.text, "fig-dead-letters") == "unavailable"
    assert 'id="fig-customers"' not in home.text
    assert 'href="/console/cases"' in home.text and 'href="/console/data"' in home.text


async def test_home_shows_the_warehouse_figures_each_linking_to_its_detail(tmp_path, clickhouse_server) -> None:
    client = clickhouse_server.client(tz_mode="aware")
    database = f"home_{uuid.uuid4().hex[:10]}"
    migrate_clickhouse(client, database)
    now = datetime.now(UTC)
    client.insert(
        f"{database}.profiles",
        [
            ["c1", "a@example.com", now, 120, 9, 1, 4, 2],
            ["c2", "b@example.com", now - timedelta(days=40), 80, 2, 1, 0, 0],
        ],
        column_names=[
            "customer_id",
            "email",
            "last_seen",
            "revenue",
            "nps_latest",
            "version",
            "email_sent",
            "email_bounced",
        ],
    )
    sent = [[f"s{n}", "c1", "track", "Email Sent", now, now, f'{{"email_id": "e{n}"}}'] for n in range(4)]
    delivered = [[f"d{n}", "c1", "track", "Email Delivered", now, now, f'{{"email_id": "e{n}"}}'] for n in range(2)]
    client.insert(
        f"{database}.events",
        sent + delivered,
        column_names=["message_id", "customer_id", "type", "event", "timestamp", "received_at", "properties"],
    )
    settings = InteractionSettings(database_url=f"sqlite:///{tmp_path}/home.sqlite")
    engine = make_engine(settings.database_url)
    migrate(engine)
    store = Store(engine)
    app = create_app(settings, store, worker=None, warehouse=Warehouse(clickhouse_server.service_client(), database))
    store.write(users.add_user, "m@example.com", "Mia", "marketer", "a long enough password", "test")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console.test") as browser:
        signed = await browser.post(
            "/console/sign-in", data={"email": "m@example.com", "password": "a long enough password"}
        )
        assert signed.status_code == 303
        home = await browser.get("/console")
    engine.dispose()
    assert home.status_code == 200, home.text
    assert "ClickHouse is not configured" not in home.text
    assert _figure(home.text, "fig-customers") == "2"
    assert _figure(home.text, "fig-active") == "1"
    assert _figure(home.text, "fig-revenue") == "200"
    assert _figure(home.text, "fig-nps") == "0.0"  # one promoter, one detractor
    assert _figure(home.text, "fig-sent") == "4"
    assert _figure(home.text, "fig-delivered") == "50.0 %"
    assert _figure(home.text, "fig-opened") == "0.0 %"
    lag = _figure(home.text, "fig-lag")
    assert lag.endswith(" s"), lag
    for detail in ("/console/customers", "/console/rules", "/console/cases", "/console/data"):
        assert f'href="{detail}"' in home.text, detail
