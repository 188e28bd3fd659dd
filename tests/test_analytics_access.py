"""Data teams' access to ClickHouse: the read-only ``ecrm_reader`` user (compose and Kubernetes),
Grafana's ClickHouse datasource as that user, and the "eCRM business" dashboard whose every
query runs on the migrated schema under the reader's limits (docs/reports.md)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from ecrm_aggregator.clickhouse_store import connect
from ecrm_aggregator.migrate import migrate
from ecrm_aggregator.settings import AggregatorSettings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "deploy" / "compose"
K8S = ROOT / "deploy" / "k8s" / "base"
READER_XML = COMPOSE / "clickhouse" / "users.d" / "ecrm-reader.xml"
GRAFANA = COMPOSE / "grafana"
BUSINESS = GRAFANA / "dashboards" / "ecrm-business.json"
READER = "ecrm_reader"
CLICKHOUSE_PLUGIN = "grafana-clickhouse-datasource"
# The dashboard's range as Grafana's ClickHouse plugin expands its macros (epoch seconds).
FROM_S, TO_S = 1_761_955_200, 1_764_547_200  # 2025-11-01 .. 2025-12-01 UTC


def _reader() -> ET.Element:
    return ET.parse(READER_XML).getroot()


def _compose() -> dict:
    return yaml.safe_load((COMPOSE / "compose.yaml").read_text())


def _profile_settings() -> dict[str, str]:
    profile = _reader().find(f"profiles/{READER}")
    assert profile is not None
    return {child.tag: (child.text or "").strip() for child in profile if child.tag != "constraints"}


# --- the read-only user --------------------------------------------------------------------


def test_the_reader_is_read_only_limited_to_the_ecrm_database_and_bounded() -> None:
    root = _reader()
    user = root.find(f"users/{READER}")
    assert user is not None, f"{READER_XML.name} defines no {READER} user"
    assert user.findtext("profile") == READER and user.findtext("quota") == READER
    assert [d.text for d in user.findall("allow_databases/database")] == ["ecrm"], "the reader sees only ecrm"
    assert user.findtext("access_management") == "0", "the reader cannot create users or grant"
    password = user.find("password")
    assert password is not None and password.get("from_env") == "CLICKHOUSE_READER_PASSWORD" and not password.text, (
        "the password comes from the server's environment, never from the file"
    )
    settings = _profile_settings()
    assert settings["readonly"] in ("1", "2"), "the reader's profile must be read-only"
    assert settings["allow_ddl"] == "0" and settings["allow_introspection_functions"] == "0"
    assert int(settings["max_execution_time"]) > 0 and int(settings["max_memory_usage"]) > 0
    constraints = root.find(f"profiles/{READER}/constraints")
    assert constraints is not None
    for name in ("max_execution_time", "max_memory_usage"):
        bound = constraints.find(name)
        assert bound is not None and int(bound.findtext("min") or 0) >= 1 and bound.findtext("max"), (
            f"{name} must be bounded (min 1: 0 would mean unlimited) so that a client cannot lift it"
        )
    assert constraints.find("allow_ddl/readonly") is not None
    quota = root.find(f"quotas/{READER}/interval")
    assert quota is not None and int(quota.findtext("duration") or 0) > 0 and int(quota.findtext("queries") or 0) > 0


def test_compose_mounts_the_reader_and_hands_grafana_its_password() -> None:
    services = _compose()["services"]
    clickhouse = services["clickhouse"]
    mount = "./clickhouse/users.d/ecrm-reader.xml:/etc/clickhouse-server/users.d/ecrm-reader.xml:ro"
    assert mount in clickhouse["volumes"]
    for name in ("clickhouse", "grafana"):
        assert services[name]["environment"]["CLICKHOUSE_READER_PASSWORD"].startswith(
            "${CLICKHOUSE_READER_PASSWORD:?"
        ), f"{name} must refuse to start without the reader's password"
    grafana = services["grafana"]["environment"]
    assert CLICKHOUSE_PLUGIN in grafana["GF_PLUGINS_PREINSTALL_SYNC"]
    assert services["grafana"]["depends_on"]["clickhouse"]["condition"] == "service_healthy"


def test_the_compose_file_refuses_a_missing_reader_password(tmp_path) -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.fail("docker-compose is needed (make deploy-tools installs it)")
    project = tmp_path / "deploy" / "compose"
    shutil.copytree(COMPOSE, project)
    env = (COMPOSE / ".env.example").read_text()
    (project / ".env").write_text(re.sub(r"^CLICKHOUSE_READER_PASSWORD=.*\n", "", env, flags=re.MULTILINE))
    done = subprocess.run([tool, "-f", str(project / "compose.yaml"), "config", "-q"],
                          capture_output=True, text=True, cwd=project)  # fmt: skip
    assert done.returncode != 0 and "set CLICKHOUSE_READER_PASSWORD" in done.stderr


# --- Grafana --------------------------------------------------------------------------------


def _clickhouse_datasource() -> dict:
    provisioned = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "clickhouse.yml").read_text())
    [source] = [d for d in provisioned["datasources"] if d["type"] == CLICKHOUSE_PLUGIN]
    return source


def test_grafana_reads_clickhouse_as_the_reader() -> None:
    source = _clickhouse_datasource()
    assert source["jsonData"]["username"] == READER and source["jsonData"]["defaultDatabase"] == "ecrm"
    assert (source["jsonData"]["host"], source["jsonData"]["port"], source["jsonData"]["protocol"]) == (
        "clickhouse",
        8123,
        "http",
    )
    assert source["secureJsonData"]["password"] == "$CLICKHOUSE_READER_PASSWORD"
    pipeline = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert [d for d in pipeline["datasources"] if d.get("isDefault")], "Prometheus stays the default datasource"


def _business() -> dict:
    return json.loads(BUSINESS.read_text())


def test_the_business_dashboard_is_provisioned_next_to_the_pipeline_one_on_clickhouse() -> None:
    dashboard = _business()
    pipeline = json.loads((GRAFANA / "dashboards" / "ecrm-pipeline.json").read_text())
    assert dashboard["uid"] != pipeline["uid"] and dashboard["title"] == "eCRM business"
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "ecrm.yml").read_text())["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"  # the directory both files are in
    uid = _clickhouse_datasource()["uid"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": CLICKHOUSE_PLUGIN, "uid": uid}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"] and target["rawSql"].strip(), panel["title"]
    titles = {p["title"] for p in dashboard["panels"]}
    assert {"Orders per day", "Revenue per day", "Active customers per week", "Email funnel per rule",
            "NPS per week"} <= titles  # fmt: skip


def _expanded(sql: str) -> str:
    """The query as Grafana's ClickHouse plugin sends it, its time macros expanded."""
    sql = re.sub(
        r"\$__timeFilter\(([^)]+)\)",
        lambda m: f"{m[1]} >= toDateTime({FROM_S}) AND {m[1]} <= toDateTime({TO_S})",
        sql,
    )
    sql = sql.replace("$__fromTime", f"toDateTime({FROM_S})").replace("$__toTime", f"toDateTime({TO_S})")
    assert "$" not in sql, f"a macro the test does not expand: {sql}"
    return sql


@pytest.fixture(scope="module")
def migrated(clickhouse_server):
    client = connect(AggregatorSettings(clickhouse_url=clickhouse_server.url))
    database = "business_dashboard"
    migrate(client, database)
    yield client, database
    client.command(f"DROP DATABASE IF EXISTS {database}")
    client.close()


QUERIES = [(p["title"], t["rawSql"]) for p in _business()["panels"] for t in p["targets"]]


@pytest.mark.clickhouse
@pytest.mark.parametrize(("title", "sql"), QUERIES, ids=[title for title, _ in QUERIES])
def test_every_dashboard_query_parses_and_runs_under_the_readers_limits(migrated, title: str, sql: str) -> None:
    client, database = migrated
    query = _expanded(sql)
    client.query("SELECT formatQuery({q:String})", parameters={"q": query})
    assert "ecrm." in query and f"{database}." not in query
    limits = {k: v for k, v in _profile_settings().items() if k in ("readonly", "max_execution_time",
                                                                     "max_memory_usage", "max_result_rows",
                                                                     "result_overflow_mode")}  # fmt: skip
    local = query.replace("ecrm.", f"{database}.")
    client.query(local, settings=limits)
    columns = [row[0] for row in client.query(f"DESCRIBE ({local})").result_rows]
    panel = next(p for p in _business()["panels"] if p["title"] == title)
    if panel["type"] == "timeseries":
        assert columns[0] == "time", f"{title}: a time series' first column is its time"


@pytest.mark.clickhouse
def test_the_dashboard_counts_orders_revenue_customers_nps_and_emails(migrated) -> None:
    """A few rows through the real materialized views: the panels see them."""
    client, database = migrated
    at = "2025-11-12 10:00:00.000"
    events = [
        ("o1", "ada", "Order Completed", '{"order_id": "1", "total": 40}'),
        ("o2", "bob", "Order Completed", '{"order_id": "2", "total": 60}'),
        ("n1", "ada", "NPS Answered", '{"survey_id": "s", "score": 10}'),
        ("n2", "bob", "NPS Answered", '{"survey_id": "s", "score": 3}'),
        ("e1", "ada", "Email Sent", '{"email_id": "m1", "rule_id": "welcome"}'),
        ("e2", "ada", "Email Link Clicked", '{"email_id": "m1", "rule_id": "welcome"}'),
    ]
    columns = ["message_id", "customer_id", "type", "event", "timestamp", "properties", "context"]
    client.command(
        f"INSERT INTO {database}.events ({', '.join(columns)}) VALUES "
        + ", ".join(f"('{m}', '{c}', 'track', '{e}', '{at}', '{p}', '{{}}')" for m, c, e, p in events)
    )
    answers = {title: client.query(_expanded(sql).replace("ecrm.", f"{database}.")) for title, sql in QUERIES}
    assert answers["Orders per day"].result_rows[0][1] == 2
    assert answers["Revenue per day"].result_rows[0][1:] == (100.0, 0.0)
    assert answers["NPS per week"].result_rows[0][1:] == (0.0, 2)
    assert [row[1] for row in answers["Active customers per week"].result_rows] == [2]
    emails = answers["Email funnel per rule"]
    funnel = dict(zip(emails.column_names, emails.result_rows[0], strict=True))
    assert (funnel["source"], funnel["messages"], funnel["delivered"], funnel["opened"], funnel["clicked"]) == (
        "rule:welcome", 1, 1, 1, 1,
    )  # fmt: skip


# --- Kubernetes ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifests() -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is needed (its kustomize renders the Kubernetes manifests)")
    rendered = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, check=True)
    return [d for d in yaml.safe_load_all(rendered.stdout) if d]


def _config_map(manifests: list[dict], prefix: str) -> dict:
    [found] = [d for d in manifests if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith(prefix)]
    return found


def test_kubernetes_ships_the_same_reader_its_secret_and_the_business_dashboard(manifests) -> None:
    users = _config_map(manifests, "ecrm-clickhouse-users")
    assert users["data"]["ecrm-reader.xml"] == READER_XML.read_text()
    [secret] = [d for d in manifests if d["kind"] == "Secret" and d["metadata"]["name"] == "ecrm-clickhouse-reader"]
    assert set(secret["stringData"]) == {"CLICKHOUSE_READER_PASSWORD"}
    services_secret = next(d for d in manifests if d["kind"] == "Secret" and d["metadata"]["name"] == "ecrm-secrets")
    assert "CLICKHOUSE_READER_PASSWORD" not in services_secret["stringData"], "the services never use the reader"
    dashboards = _config_map(manifests, "ecrm-grafana-dashboards")
    assert json.loads(dashboards["data"]["ecrm-business.json"]) == _business()
    datasources = _config_map(manifests, "ecrm-grafana-datasources")
    assert datasources["metadata"]["labels"]["grafana_datasource"] == "1"
    [source] = yaml.safe_load(datasources["data"]["ecrm-clickhouse.yaml"])["datasources"]
    assert source["uid"] == _clickhouse_datasource()["uid"] and source["jsonData"]["username"] == READER
    assert source["secureJsonData"]["password"] == "$CLICKHOUSE_READER_PASSWORD"
