"""The segment routes that read ClickHouse (preview, sizes, members, CSV, daily changes) and
``GET /v1/figures``, against a real ClickHouse with the aggregator's schema."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from ecrm_aggregator.migrate import migrate as migrate_clickhouse
from ecrm_interaction.api.app import create_app
from ecrm_interaction.api.routes import segments as segment_routes
from ecrm_interaction.api.services.warehouse import Warehouse
from ecrm_interaction.consumer.segment_definitions import SegmentDefinitions
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage import users
from ecrm_interaction.storage.store import Store, make_engine, migrate
from ecrm_schemas.segments import parse_definition

TOKEN = "segments-figures-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
NOW = datetime.now(UTC).replace(microsecond=0)

PROFILE_COLUMNS = [
    "customer_id",
    "email",
    "traits",
    "first_seen",
    "last_seen",
    "orders",
    "revenue",
    "nps_latest",
    "version",
    "email_sent",
    "email_bounced",
    "email_opened",
    "email_clicked",
]
EVENT_COLUMNS = ["message_id", "customer_id", "type", "event", "timestamp", "received_at", "properties"]


@pytest.fixture(scope="module")
def warehouse(clickhouse_server):
    client = clickhouse_server.client(tz_mode="aware")
    database = f"seg_{uuid.uuid4().hex[:10]}"
    migrate_clickhouse(client, database)
    profiles = []
    for n in range(30):
        # c00..c29: orders = n % 5; c00..c09 seen today, the others 60 days ago; NPS 10 for c00-c02, 3 for c03;
        # c00 and c01 were each sent 2 emails, c01 had one bounce; c00 opened 2, clicked 1.
        nps = 10 if n < 3 else 3 if n == 3 else None
        last_seen = NOW if n < 10 else NOW - timedelta(days=60)
        email = {0: [2, 0, 2, 1], 1: [2, 1, 0, 0]}.get(n, [0, 0, 0, 0])
        first_seen = NOW - timedelta(days=90)
        profiles.append(
            [f"c{n:02d}", f"c{n:02d}@example.com", "{}", first_seen, last_seen, n % 5, 10 * n, nps, 1, *email]
        )
    client.insert(f"{database}.profiles", profiles, column_names=PROFILE_COLUMNS)
    email = [
        ("Email Sent", ["e1", "e2", "e3", "e4"]),
        ("Email Delivered", ["e1", "e2", "e3"]),
        ("Email Opened", ["e1", "e2", "e2"]),  # e2 opened twice: one email opened
        ("Email Link Clicked", ["e1"]),
    ]
    events = [
        [
            f"m-{name}-{n}",
            "c00",
            "track",
            name,
            NOW - timedelta(minutes=5),
            NOW - timedelta(minutes=5),
            f'{{"email_id": "{email_id}"}}',
        ]
        for name, ids in email
        for n, email_id in enumerate(ids)
    ]
    events += [
        [f"m-view-{n}", f"c{n:02d}", "track", "Product Viewed", NOW - timedelta(days=1), NOW, "{}"] for n in range(4)
    ]
    client.insert(f"{database}.events", events, column_names=EVENT_COLUMNS)
    membership = [["loyal", f"c{n:02d}", 1, NOW - timedelta(days=2), "orders >= 3", 1] for n in range(30) if n % 5 >= 3]
    membership.append(["loyal", "c99", 0, NOW, "left", 1])
    client.insert(
        f"{database}.segment_membership",
        membership,
        column_names=["segment_id", "customer_id", "is_member", "changed_at", "reason", "version"],
    )
    changes = [
        [NOW - timedelta(days=2), "loyal", "Loyal", f"c{n:02d}", "entered", "event", "orders >= 3", f"x{n}"]
        for n in range(30)
        if n % 5 >= 3
    ]
    changes.append([NOW, "loyal", "Loyal", "c99", "exited", "timer", "left", "x99"])
    client.insert(
        f"{database}.segment_changes",
        changes,
        column_names=["at", "segment_id", "segment_name", "customer_id", "change", "trigger", "reason", "event_id"],
    )
    return Warehouse(clickhouse_server.service_client(), database)


@pytest.fixture
async def api(tmp_path, warehouse):
    settings = InteractionSettings(database_url=f"sqlite:///{tmp_path}/i.db", interaction_api_token=TOKEN)
    engine = make_engine(settings.database_url)
    migrate(engine)
    store = Store(engine)
    definitions = SegmentDefinitions()
    definitions.put(
        parse_definition(
            {"id": "loyal", "name": "Loyal", "condition": {"kind": "trait", "trait": "orders", "op": "gte", "value": 3}}
        )
    )
    app = create_app(settings, store, worker=None, segment_definitions=definitions, warehouse=warehouse)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        client.store = store
        yield client
    engine.dispose()


def _definition(condition: dict, segment_id: str = "draft") -> dict:
    return {"id": segment_id, "name": "Draft", "condition": condition}


async def test_a_preview_counts_and_samples_the_members_by_the_aggregators_query(api) -> None:
    condition = {
        "kind": "all",
        "conditions": [
            {"kind": "trait", "trait": "orders", "op": "gte", "value": 3},
            {"kind": "trait", "trait": "revenue", "op": "lt", "value": 200},
        ],
    }
    answer = await api.post("/v1/segments/preview", json=_definition(condition), headers=ADMIN)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    # orders 3 or 4 and revenue (10 n) below 200: c03, c04, c08, c09, c13, c14, c18, c19.
    assert body["evaluated"] is True
    assert body["members"] == 8
    assert body["sample"] == ["c03", "c04", "c08", "c09", "c13", "c14", "c18", "c19"]
    assert body["summary"]
    events = {"kind": "event", "event": "Product Viewed", "within_days": 7, "op": "gte", "count": 1}
    viewed = (await api.post("/v1/segments/preview", json=_definition(events), headers=ADMIN)).json()
    assert (viewed["members"], viewed["sample"]) == (4, ["c00", "c01", "c02", "c03"])


async def test_a_preview_of_a_bad_definition_names_the_field_and_saves_nothing(api) -> None:
    bad = _definition({"kind": "trait", "trait": "ordres", "op": "gte", "value": 3})
    answer = await api.post("/v1/segments/preview", json=bad, headers=ADMIN)
    assert answer.status_code == 422
    fields = [e["field"] for e in answer.json()["error"]["errors"]]
    assert fields == ["condition.trait.trait"], fields
    assert "ordres" in answer.json()["error"]["errors"][0]["message"]
    assert [s["id"] for s in (await api.get("/v1/segments", headers=ADMIN)).json()] == ["loyal"]


async def test_a_viewer_may_not_preview(api) -> None:
    api.store.write(users.add_user, "v@example.com", "V", "viewer", "a long enough password", "test")
    token = (await api.post("/v1/tokens", json={"name": "viewer-1", "role": "viewer"}, headers=ADMIN)).json()["token"]
    condition = {"kind": "trait", "trait": "orders", "op": "gte", "value": 3}
    answer = await api.post(
        "/v1/segments/preview", json=_definition(condition), headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 403
    assert (await api.get("/v1/segment-sizes", headers={"Authorization": f"Bearer {token}"})).status_code == 200


async def test_sizes_count_only_current_members(api) -> None:
    sizes = (await api.get("/v1/segment-sizes", headers=ADMIN)).json()
    assert sizes == [{"segment_id": "loyal", "members": 12}]


async def test_members_come_a_page_at_a_time_with_their_email(api) -> None:
    first = (await api.get("/v1/segments/loyal/members", params={"limit": 5}, headers=ADMIN)).json()
    assert first["total"] == 12
    assert [m["customer_id"] for m in first["members"]] == ["c03", "c04", "c08", "c09", "c13"]
    assert first["members"][0]["email"] == "c03@example.com"
    assert first["members"][0]["reason"] == "orders >= 3"
    last = (await api.get("/v1/segments/loyal/members", params={"limit": 5, "offset": 10}, headers=ADMIN)).json()
    assert [m["customer_id"] for m in last["members"]] == ["c28", "c29"]
    assert (await api.get("/v1/segments/nope/members", headers=ADMIN)).status_code == 404
    assert (await api.get("/v1/segments/loyal/members", params={"limit": 0}, headers=ADMIN)).status_code == 422


async def test_the_csv_export_streams_every_member_in_chunks(api, monkeypatch) -> None:
    monkeypatch.setattr(segment_routes, "CSV_CHUNK", 5)  # 12 members: three reads
    answer = await api.get("/v1/segments/loyal/members.csv", headers=ADMIN)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert rows[0] == ["customer_id", "email", "member_since", "reason"]
    assert [r[0] for r in rows[1:]] == [
        "c03",
        "c04",
        "c08",
        "c09",
        "c13",
        "c14",
        "c18",
        "c19",
        "c23",
        "c24",
        "c28",
        "c29",
    ]
    assert rows[1][1] == "c03@example.com"


async def test_daily_changes_fill_every_day_of_the_window(api) -> None:
    body = (await api.get("/v1/segments/loyal/changes", params={"days": 7}, headers=ADMIN)).json()
    days = body["days"]
    assert len(days) == 7
    assert days[-1]["day"] == NOW.date().isoformat()
    by_day = {d["day"]: (d["entered"], d["exited"]) for d in days}
    assert by_day[(NOW - timedelta(days=2)).date().isoformat()] == (12, 0)
    assert by_day[NOW.date().isoformat()] == (0, 1)
    assert sum(d["entered"] for d in days) == 12


async def test_figures_aggregate_the_warehouse_and_the_relational_store(api) -> None:
    answer = await api.get("/v1/figures", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["customers"] == 30
    assert body["active_30d"] == 10
    assert body["revenue"] == sum(10 * n for n in range(30))
    assert body["nps_answers"] == 4
    assert body["nps"] == 50.0  # 3 promoters, 1 detractor of 4
    email = body["email"]
    assert (email["sent"], email["delivered"], email["opened"], email["clicked"]) == (4, 3, 2, 1)
    assert email["delivered_rate"] == 0.75
    assert email["open_rate"] == pytest.approx(2 / 3)
    assert email["click_rate"] == pytest.approx(1 / 3)
    assert body["pipeline_lag_ms"] is not None and body["pipeline_lag_ms"] >= 0
    assert body["cases_open"] == 0 and body["cases_overdue"] == 0
    assert body["unavailable"] == ["dead_letters"]  # no Kafka here
