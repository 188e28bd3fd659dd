"""One stack for the whole scenario suite, started the way ``make run`` starts it.

``Stack``/``StackSettings`` from ``ecrm_embedded.stack`` on free ports with a data dir of its
own (so the shipped example rules are loaded, as under ``make run``), plus what a shop
configures on day one: a server source and a browser source created with the
``ecrm-collector sources add`` CLI, and the three ESP webhooks switched on with the
providers' keys (SendGrid's verification key, Mailgun's signing key, the SES topic; SNS's
signing certificate is served from loopback, as AWS serves it). Each story uses customer
ids of its own, so stories share the stack without interfering.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import esp_signing
import pytest
from scenarios.users import (
    CATALOGUE,
    MAILGUN_SIGNING_KEY,
    SES_TOPIC_ARN,
    AnalyticsPython,
    DataTeam,
    InteractionApi,
    Mailbox,
    Shop,
    Staff,
    eventually,
)

from ecrm_embedded.net import free_port
from ecrm_embedded.stack import Stack, StackSettings
from ecrm_embedded.testing import headless_chromium

SCENARIO_RULES = Path(__file__).with_name("rules.yaml")


@dataclass
class ScenarioStack(Stack):
    """The dev stack with the providers' webhook settings a shop sets to receive ESP events."""

    extra_env: dict[str, str] = field(default_factory=dict)
    server_key: str = ""
    browser_key: str = ""

    def service_env(self) -> dict[str, str]:
        return {**super().service_env(), **self.extra_env}


class _CertificateHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        pem = esp_signing.certificate()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-pem-file")
        self.send_header("Content-Length", str(len(pem)))
        self.end_headers()
        self.wfile.write(pem)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture(scope="package")
def sns_certificates() -> Iterator[str]:
    """Where "SNS" serves its signing certificate (loopback; the collector may fetch only from there)."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _CertificateHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/SimpleNotificationService-scenario.pem"
    server.shutdown()


def _add_source(data_dir: Path, name: str, *args: str) -> str:
    """``ecrm-collector sources add`` as the README shows it; prints the key once."""
    done = subprocess.run(
        [sys.executable, "-m", "ecrm_collector", "sources", "add", name, *args,
         "--file", str(data_dir / "sources.json")],
        capture_output=True, text=True, timeout=60, env={**os.environ, "LOG_LEVEL": "WARNING"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory, sns_certificates: str) -> Iterator[ScenarioStack]:
    data_dir = tmp_path_factory.mktemp("scenario-stack") / ".ecrm"  # where `make run` keeps it, in its directory
    settings = StackSettings(
        ecrm_data_dir=data_dir,
        kafka_port=free_port(), clickhouse_port=free_port(), smtp_port=free_port(), collector_port=free_port(),
        interaction_port=free_port(), aggregator_metrics_port=free_port(),
        collector_write_keys="scenario-env-key-unused",
    )  # fmt: skip
    cert_origin = sns_certificates.rsplit("/", 1)[0] + "/"
    running = ScenarioStack(
        settings,
        extra_env={
            "COLLECTOR_SENDGRID_VERIFICATION_KEY": esp_signing.SENDGRID_VERIFICATION_KEY,
            "COLLECTOR_MAILGUN_SIGNING_KEY": MAILGUN_SIGNING_KEY,
            "COLLECTOR_SES_TOPIC_ARNS": SES_TOPIC_ARN,
            "COLLECTOR_SNS_CERT_URL_PATTERN": "^" + re.escape(cert_origin),
            # The shop relays through its provider: each one reads our tags from the message headers.
            "INTERACTION_EMAIL_PROVIDERS": "sendgrid,ses,mailgun",
            # The chat's hand-off story runs at any hour (outside hours is the API tests' story).
            "INTERACTION_SUPPORT_HOURS": "always",
        },
    )
    running.data_dir.mkdir(parents=True, exist_ok=True)
    running.server_key = _add_source(running.data_dir, "shop-backend", "--kind", "server")
    running.browser_key = _add_source(
        running.data_dir, "shop-web", "--kind", "browser", "--origin", "https://shop.example.com"
    )
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="package")
def shop(stack: ScenarioStack, sns_certificates: str) -> Shop:
    """The started stack's interfaces, with the scenario rules loaded and a small order history."""
    s = stack.settings
    shop = Shop(
        collector=f"http://127.0.0.1:{s.collector_port}",
        interaction=f"http://127.0.0.1:{s.interaction_port}",
        clickhouse_port=s.clickhouse_port,
        mail_dir=stack.data_dir / "mail",
        data_dir=stack.data_dir,
        server_key=stack.server_key,
        browser_key=stack.browser_key,
        api_token=s.interaction_api_token,
        sns_cert_url=sns_certificates,
    )
    api = InteractionApi(shop)
    loaded = api.http.post("/v1/rules/import", content=SCENARIO_RULES.read_bytes(),
                           headers={"Content-Type": "application/yaml"})  # fmt: skip
    assert loaded.status_code == 200, loaded.text

    # The marketer's cart reminder: the shipped one, with a short wait and recommendations.
    shipped = api.get("/v1/rules/cart-reminder")
    assert shipped.status_code == 200, shipped.text
    reminder = shipped.json() | {"id": "scenario-cart-reminder", "name": "Cart reminder (scenario: 4 s wait)"}
    reminder["wait"] = {**reminder["wait"], "duration": "4s"}
    reminder["actions"] = [{"kind": "email", "template": "scenario-cart-reminder", "recommendations": 3}]
    created = api.put("/v1/rules/scenario-cart-reminder", reminder)
    assert created.status_code == 200, created.text

    # The marketer's VIP segment (the scenario-vip rule emails who enters it).
    vip = {"id": "scenario-vip", "name": "VIP: revenue of 500 or more",
           "condition": {"kind": "trait", "trait": "revenue", "op": "gte", "value": 500}}  # fmt: skip
    published = api.put("/v1/segments/scenario-vip", vip)
    assert published.status_code == 200, published.text

    # Other shoppers' orders (no email address, so no mail): what "popular" means in this shop.
    regulars = AnalyticsPython(shop)
    for n, product in enumerate(CATALOGUE):
        for buyer in range(len(CATALOGUE) - n):
            regulars.track(f"regular-{buyer}", "Order Completed", {
                "order_id": f"seed-{n}-{buyer}", "total": 30, "currency": "EUR",
                "products": [{"product_id": product, "price": 30, "quantity": 1}]})  # fmt: skip
    assert regulars.flush().status_code == 200
    data = DataTeam(shop)
    seeded = eventually(lambda: data.rows(
        "SELECT count() AS n FROM ecrm.events WHERE event = 'Order Completed' AND startsWith(customer_id, 'regular-')"
    )[0]["n"] == 6, timeout_s=60)  # fmt: skip
    assert seeded, "the seed orders reach ClickHouse"
    return shop


@pytest.fixture(scope="package")
def api(shop: Shop) -> InteractionApi:
    return InteractionApi(shop)


@pytest.fixture(scope="package")
def mailbox(shop: Shop) -> Mailbox:
    return Mailbox(shop.mail_dir)


@pytest.fixture(scope="package")
def data_team(shop: Shop) -> DataTeam:
    return DataTeam(shop)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One browser per story module: Playwright's sync API keeps an event loop running while it
    is open, which would break the asyncio tests after this directory (package scope is the
    session's here: the directory is not a package)."""
    with headless_chromium("the console stories") as browser:
        yield browser


@pytest.fixture
def staff(shop: Shop, api: InteractionApi, chromium: Any) -> Iterator[Callable[..., Staff]]:
    """``staff("marketer")``: a new console user of that role, created by the admin through
    ``POST /v1/users``, signed in in a browser of their own (``width=390``: a phone)."""
    opened: list[Staff] = []

    def person(role: str, *, width: int = 1280) -> Staff:
        email, password = f"{role}-{uuid.uuid4().hex[:8]}@shop.example.com", "correct-horse-" + uuid.uuid4().hex[:8]
        created = api.post("/v1/users", {"email": email, "name": f"A {role}", "role": role, "password": password})
        assert created.status_code == 201, created.text
        opened.append(Staff(shop, chromium, email, password, width=width).sign_in())
        return opened[-1]

    yield person
    for person_ in opened:
        person_.close()
