"""Saved reports, dashboards and their subscriptions: the API refuses what cannot be saved
(naming the filter), a due issue is sent once to every subscriber through the SMTP server (a
real sink: HTML with the chart inline, text, the CSV attached, as a mail client reads it), and
when it is next due; on a real ClickHouse."""

from __future__ import annotations

import email
import uuid
from datetime import UTC, date, datetime, timedelta
from email import policy as email_policy

import httpx
import orjson
import pytest

from ecrm_interaction.api.app import create_app
from ecrm_interaction.api.services.warehouse import Warehouse
from ecrm_interaction.delivery.dispatcher import Dispatcher
from ecrm_interaction.engine.report_subscriptions import covered, filters_on, next_due
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage import report_subscriptions as subscriptions
from ecrm_interaction.storage.store import Store, make_engine, migrate

TOKEN = "t0ken"
COLUMNS = ["message_id", "customer_id", "user_id", "anonymous_id", "type", "event", "timestamp", "sent_at",
           "received_at", "properties", "traits", "context", "source_partition", "source_offset"]  # fmt: skip


# --- pure -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("cadence", "after", "expected"), [
    ("daily", datetime(2026, 12, 3, 6, 59, tzinfo=UTC), datetime(2026, 12, 3, 7, tzinfo=UTC)),
    ("daily", datetime(2026, 12, 3, 7, 0, tzinfo=UTC), datetime(2026, 12, 4, 7, tzinfo=UTC)),
    ("weekly", datetime(2026, 12, 3, 12, tzinfo=UTC), datetime(2026, 12, 7, 7, tzinfo=UTC)),  # a Thursday → Monday
    ("weekly", datetime(2026, 12, 7, 6, tzinfo=UTC), datetime(2026, 12, 7, 7, tzinfo=UTC)),
    ("monthly", datetime(2026, 12, 1, 6, tzinfo=UTC), datetime(2026, 12, 1, 7, tzinfo=UTC)),
    ("monthly", datetime(2026, 12, 3, 6, tzinfo=UTC), datetime(2027, 1, 1, 7, tzinfo=UTC)),
])  # fmt: skip
def test_the_next_issue_is_the_first_slot_after(cadence, after, expected) -> None:
    assert next_due(cadence, 7, after) == expected


def test_an_issue_covers_the_period_that_ended_and_a_rolling_range_ends_on_the_day() -> None:
    assert covered("daily", datetime(2026, 12, 4, 7, tzinfo=UTC)) == (date(2026, 12, 3), date(2026, 12, 3))
    assert covered("weekly", datetime(2026, 12, 7, 7, tzinfo=UTC)) == (date(2026, 11, 30), date(2026, 12, 6))
    assert covered("monthly", datetime(2026, 12, 1, 7, tzinfo=UTC)) == (date(2026, 11, 1), date(2026, 11, 30))
    rolled = filters_on({"event": "Order Completed"}, 7, date(2026, 12, 4))
    assert rolled == {"event": "Order Completed", "since": "2026-11-28", "until": "2026-12-04"}
    fixed = {"since": "2026-01-01", "until": "2026-01-31"}
    assert filters_on(fixed, None, date(2026, 12, 4)) == fixed


# --- with ClickHouse and the SMTP sink ---------------------------------------------------------------


@pytest.fixture
def world(tmp_path, smtp_sink, clickhouse_server):
    from ecrm_aggregator.migrate import migrate as migrate_clickhouse

    database = f"subscriptions_{uuid.uuid4().hex[:8]}"
    client = clickhouse_server.client(tz_mode="aware")
    migrate_clickhouse(client, database)
    yesterday = datetime.now(UTC) - timedelta(days=1)
    rows = [[str(uuid.uuid4()), f"c{i}", f"c{i}", "", "track", "Order Completed", yesterday, None, yesterday,
             orjson.dumps({"order_id": f"o{i}", "total": 10 * (i + 1)}).decode(), "{}", "{}", 0, i]
            for i in range(3)]  # fmt: skip
    client.insert(f"{database}.events", rows, column_names=COLUMNS)
    settings = InteractionSettings(database_url=f"sqlite:///{tmp_path}/s.db", smtp_url=smtp_sink.url,
                                   interaction_api_token=TOKEN)  # fmt: skip
    engine = make_engine(settings.database_url)
    migrate(engine)
    store = Store(engine)
    warehouse = Warehouse(clickhouse_server.service_client(), database)
    dispatcher = Dispatcher(settings, store, producer=None, warehouse=warehouse)
    app = create_app(settings, store, worker=None, dispatcher=dispatcher, warehouse=warehouse)
    yield app, store, dispatcher, smtp_sink
    engine.dispose()


def _client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                             headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip


def _mails(sink) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(p.read_bytes(), policy=email_policy.default) for p in sink.messages()]  # type: ignore[misc]


@pytest.mark.clickhouse
@pytest.mark.smtp
async def test_a_dashboard_subscription_sends_one_issue_to_each_subscriber_with_charts_and_csv(world) -> None:
    app, store, dispatcher, sink = world
    async with _client(app) as api:
        refused = await api.post("/v1/saved-reports", json={"name": "Orders", "report": "trends", "days": 7,
                                                              "params": {"interval": "fortnight"}})  # fmt: skip
        assert refused.status_code == 422
        assert refused.json()["error"]["errors"][0]["field"] == "params.interval"
        unknown = await api.post("/v1/saved-reports", json={"name": "X", "report": "horoscope"})
        assert unknown.status_code == 422 and unknown.json()["error"]["errors"][0]["field"] == "report"

        orders = await api.post("/v1/saved-reports", json={"name": "Orders last week", "report": "trends", "days": 7,
                                                            "params": {"event": "Order Completed"}})  # fmt: skip
        revenue = await api.post("/v1/saved-reports", json={"name": "Revenue", "report": "revenue", "days": 7})
        assert orders.status_code == 201 and revenue.status_code == 201, (orders.text, revenue.text)
        result = await api.get(f"/v1/saved-reports/{revenue.json()['id']}/result")
        assert result.status_code == 200 and result.json()["summary"]["orders"] == 3
        assert result.json()["summary"]["revenue"] == 60.0

        bad_board = await api.post("/v1/dashboards", json={"name": "Weekly", "reports": ["nope"]})
        assert bad_board.status_code == 422 and bad_board.json()["error"]["errors"][0]["field"] == "reports.0"
        board = await api.post("/v1/dashboards", json={"name": "Weekly business", "reports": [
            orders.json()["id"], revenue.json()["id"]]})  # fmt: skip
        assert board.status_code == 201 and [r["name"] for r in board.json()["reports"]] == [
            "Orders last week",
            "Revenue",
        ]

        bad = await api.post("/v1/report-subscriptions", json={"target": "dashboard", "target_id": board.json()["id"],
                                                                "recipients": ["not an address"]})  # fmt: skip
        assert bad.status_code == 422 and bad.json()["error"]["errors"][0]["field"] == "recipients.0"
        subscribed = await api.post("/v1/report-subscriptions", json={
            "target": "dashboard", "target_id": board.json()["id"], "cadence": "daily", "hour": 7,
            "recipients": ["mia@shop.example", "boss@shop.example"]})  # fmt: skip
        assert subscribed.status_code == 201, subscribed.text
        due = datetime.fromisoformat(subscribed.json()["next_due_at"])
        assert due > datetime.now(UTC) and due.hour == 7

    assert await dispatcher.report_mail.send_due(due - timedelta(seconds=1)) == 0, "not due yet"
    assert sink.messages() == []
    assert await dispatcher.report_mail.send_due(due) == 1
    assert await dispatcher.report_mail.send_due(due) == 0, "an issue goes once"
    mails = _mails(sink)
    assert sorted(str(m["To"]) for m in mails) == ["boss@shop.example", "mia@shop.example"]
    mail = mails[0]
    assert str(mail["Subject"]).startswith("Weekly business · ")
    html = mail.get_body(preferencelist=("html",)).get_content()
    text = mail.get_body(preferencelist=("plain",)).get_content()
    assert "Orders last week" in html and "Revenue" in html and "Average order value" in text
    images = [p for p in mail.walk() if p.get_content_type() == "image/png"]
    assert len(images) == 2 and all(p.get_content()[:8] == b"\x89PNG\r\n\x1a\n" for p in images)
    assert all(f"cid:{str(p['Content-ID']).strip('<>')}" in html for p in images), "each chart is shown inline"
    attached = {
        p.get_filename(): p.get_content() for p in mail.iter_attachments() if p.get_content_type() == "text/csv"
    }
    assert len(attached) == 2
    revenue_csv = next(v for k, v in attached.items() if k.startswith("revenue-"))
    assert revenue_csv.splitlines()[0].startswith("All orders,Revenue,Orders")
    assert revenue_csv.splitlines()[1].startswith("all,60.0,3")

    row = store.read(subscriptions.get, subscribed.json()["id"])
    assert row.next_due_at == due + timedelta(days=1) and row.last_sent_at == due and row.last_error is None


@pytest.mark.clickhouse
@pytest.mark.smtp
async def test_send_now_reaches_the_subscriber_and_a_deleted_report_stops_its_subscriptions(world) -> None:
    app, _store, _dispatcher, sink = world
    async with _client(app) as api:
        saved = await api.post("/v1/saved-reports", json={"name": "NPS", "report": "satisfaction", "days": 30})
        sub = await api.post("/v1/report-subscriptions", json={"target": "report", "target_id": saved.json()["id"],
                                                                "recipients": ["mia@shop.example"]})  # fmt: skip
        sent = await api.post(f"/v1/report-subscriptions/{sub.json()['id']}/send")
        assert sent.status_code == 200 and sent.json()["sent"] == 1, sent.text
        assert [str(m["To"]) for m in _mails(sink)] == ["mia@shop.example"]
        assert (await api.delete(f"/v1/saved-reports/{saved.json()['id']}")).status_code == 204
        assert (await api.get("/v1/report-subscriptions")).json() == []
