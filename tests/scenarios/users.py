"""What the scenario suite's users hold: SDK clients, a mailbox, the REST API, ESP webhooks, SQL.

Every helper here talks to the started stack only through an interface a real user has:

- :class:`AnalyticsPython`, :class:`AnalyticsNode`, :class:`AnalyticsJs` and
  :class:`RudderBeacon` send HTTP in exactly the shapes the official SDKs send (Segment's
  analytics-python ``segment/analytics/request.py`` and ``client.py``, analytics-next's
  ``packages/node/src/plugins/segmentio/publisher.ts`` and
  ``packages/browser/src/plugins/segmentio/{index,normalize,fetch-dispatcher}.ts``, and
  RudderStack's JS SDK beacon), so the collector sees what it would see in production;
- :class:`Mailbox` reads the ``.eml`` files the SMTP sink writes as a mail client reads them:
  raw header lines, unfolded, never RFC 2047-decoded (clients do not decode
  ``List-Unsubscribe``); only the subject and the body parts are decoded, as clients display them;
- :class:`InteractionApi` is the marketers', agents' and operators' REST API;
- :class:`SendGrid`, :class:`AmazonSes` and :class:`Mailgun` play the providers: they read
  the message they were handed (its raw headers, where each provider reads its tags from),
  and post a webhook signed as the provider signs it (keys from ``esp_signing``);
- :class:`DataTeam` queries the ClickHouse views the data team is told to start with;
- :class:`Staff` is a person at the staff console in a real browser (Debian's Chromium driven
  by Playwright): they read the page by its labels and roles, as a screen reader would.
"""

from __future__ import annotations

import base64
import email
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

import clickhouse_connect
import esp_signing
import httpx

SHOP_ORIGIN = "https://shop.example.com"
CHROME_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
CATALOGUE = ("p-sneaker", "p-socks", "p-cap")
"""Products other shoppers bought before the stories start (what is popular, for recommendations)."""
SES_TOPIC_ARN = "arn:aws:sns:eu-west-1:123456789012:ecrm-ses-events"
MAILGUN_SIGNING_KEY = "key-scenario-" + secrets.token_hex(12)

T = TypeVar("T")


def eventually(probe: Callable[[], T], timeout_s: float = 30.0, every_s: float = 0.25) -> T:
    """``probe()`` until it returns something truthy, or its last value after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every_s)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Shop:
    """Where the started stack answers, and the keys its users were given."""

    collector: str
    interaction: str
    clickhouse_port: int
    mail_dir: Path
    data_dir: Path
    server_key: str
    browser_key: str
    api_token: str
    sns_cert_url: str


# --- the SDKs --------------------------------------------------------------------------------


class AnalyticsPython:
    """Segment's analytics-python: messages queued, then ``POST /v1/batch`` with Basic auth.

    The body is ``{"batch": [...], "sentAt", "writeKey"}``; each message carries
    ``integrations``, ``context.library`` ``{"name": "analytics-python"}``, a uuid4
    ``messageId``, an ISO ``timestamp`` with milliseconds, and ``userId`` / ``anonymousId``
    (``null`` when not given: the SDK's ``clean()`` keeps ``None``).
    """

    VERSION = "2.3.4"

    def __init__(self, shop: Shop, write_key: str | None = None) -> None:
        self.url, self.write_key = shop.collector + "/v1/batch", write_key or shop.server_key
        self.queue: list[dict[str, Any]] = []

    def _enqueue(self, msg: dict[str, Any], timestamp: datetime | None) -> dict[str, Any]:
        msg.setdefault("integrations", {})
        msg.setdefault("context", {})
        msg["timestamp"] = (timestamp or datetime.now(UTC)).isoformat(timespec="milliseconds")
        msg["messageId"] = msg.get("messageId") or str(uuid.uuid4())
        msg["context"]["library"] = {"name": "analytics-python", "version": self.VERSION}
        msg.setdefault("userId", None)
        msg.setdefault("anonymousId", None)
        self.queue.append(msg)
        return msg

    def identify(self, user_id: str, traits: dict[str, Any], *, timestamp: datetime | None = None) -> dict[str, Any]:
        return self._enqueue({"type": "identify", "userId": user_id, "traits": traits}, timestamp)

    def track(
        self, user_id: str, event: str, properties: dict[str, Any], *, timestamp: datetime | None = None
    ) -> dict[str, Any]:
        msg = {"type": "track", "userId": user_id, "event": event, "properties": properties}
        return self._enqueue(msg, timestamp)

    def flush(self, path: str = "/v1/batch") -> httpx.Response:
        body = {"batch": self.queue, "sentAt": datetime.now(UTC).isoformat(), "writeKey": self.write_key}
        credentials = base64.b64encode(f"{self.write_key}:".encode()).decode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"analytics-python/{self.VERSION}",
            "Authorization": f"Basic {credentials}",
        }
        url = self.url.rsplit("/v1/batch", 1)[0] + path
        response = httpx.post(url, content=json.dumps(body), headers=headers, timeout=30)
        self.queue = []
        return response


class AnalyticsNode:
    """Segment's @segment/analytics-node: ``POST /v1/batch`` with ``{"batch", "sentAt"}`` and Basic auth.

    Messages carry ``messageId`` ``node-next-<epoch ms>-<uuid>``, ``_metadata``
    (``nodeVersion``, ``jsRuntime``), ``context.library`` ``@segment/analytics-node``;
    ``page`` puts ``name`` and ``category`` at the top level (and the category in the properties).
    """

    VERSION = "2.2.1"

    def __init__(self, shop: Shop, write_key: str | None = None) -> None:
        self.url, self.write_key = shop.collector + "/v1/batch", write_key or shop.server_key
        self.queue: list[dict[str, Any]] = []

    def _enqueue(self, msg: dict[str, Any]) -> dict[str, Any]:
        msg.update(
            {
                "integrations": {},
                "timestamp": now_iso(),
                "messageId": f"node-next-{int(time.time() * 1000)}-{uuid.uuid4()}",
                "context": {"library": {"name": "@segment/analytics-node", "version": self.VERSION}},
                "_metadata": {"nodeVersion": "20.18.1", "jsRuntime": "node"},
            }
        )
        self.queue.append(msg)
        return msg

    def track(self, user_id: str, event: str, properties: dict[str, Any]) -> dict[str, Any]:
        return self._enqueue({"type": "track", "userId": user_id, "event": event, "properties": properties})

    def identify(self, user_id: str, traits: dict[str, Any]) -> dict[str, Any]:
        return self._enqueue({"type": "identify", "userId": user_id, "traits": traits})

    def page(self, user_id: str, category: str, name: str, properties: dict[str, Any]) -> dict[str, Any]:
        msg = {"type": "page", "userId": user_id, "name": name, "category": category,
               "properties": {**properties, "category": category}}  # fmt: skip
        return self._enqueue(msg)

    def flush(self) -> httpx.Response:
        credentials = base64.b64encode(f"{self.write_key}:".encode()).decode()
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Basic {credentials}",
            "User-Agent": "analytics-node-next/latest",
        }
        body = {"batch": self.queue, "sentAt": now_iso()}
        response = httpx.post(self.url, content=json.dumps(body), headers=headers, timeout=30)
        self.queue = []
        return response


class AnalyticsJs:
    """Segment's analytics.js (analytics-next) in a browser on the shop's origin.

    One ``fetch`` per call to ``https://<host>/v1/<first letter of the type>``, body JSON sent
    as ``text/plain`` (no CORS preflight) with ``writeKey``, ``sentAt``, ``_metadata`` and the
    browser's ``context`` (library ``analytics.js``, page, userAgent, locale); the browser adds
    ``Origin``.
    """

    VERSION = "next-1.76.0"

    def __init__(self, shop: Shop, origin: str = SHOP_ORIGIN, write_key: str | None = None) -> None:
        self.base, self.origin, self.write_key = shop.collector, origin, write_key or shop.browser_key
        self.anonymous_id = str(uuid.uuid4())
        self.user_id: str | None = None

    def _send(self, event_type: str, msg: dict[str, Any], path: str = "/") -> httpx.Response:
        url = self.origin + path
        body = {
            **msg,
            "type": event_type,
            "messageId": f"ajs-next-{int(time.time() * 1000)}-{uuid.uuid4()}",
            "timestamp": now_iso(),
            "integrations": {},
            "context": {
                "page": {"path": path, "referrer": "", "search": "", "title": "Shop", "url": url},
                "userAgent": CHROME_UA,
                "locale": "en-GB",
                "library": {"name": "analytics.js", "version": self.VERSION},
            },
            "anonymousId": self.anonymous_id,
            "writeKey": self.write_key,
            "sentAt": now_iso(),
            "_metadata": {"bundled": ["Segment.io"], "unbundled": [], "bundledIds": []},
        }
        if self.user_id:
            body["userId"] = self.user_id
        headers = {"Content-Type": "text/plain", "Origin": self.origin, "Referer": url, "User-Agent": CHROME_UA}
        return httpx.post(f"{self.base}/v1/{event_type[0]}", content=json.dumps(body), headers=headers, timeout=30)

    def page(self, category: str | None, name: str, path: str) -> httpx.Response:
        properties = {"path": path, "url": self.origin + path, "title": name, "referrer": "", "search": ""}
        msg: dict[str, Any] = {"name": name, "properties": properties}
        if category:
            msg["category"] = category
            properties["category"] = category
        return self._send("page", msg, path)

    def identify(self, user_id: str, traits: dict[str, Any]) -> httpx.Response:
        self.user_id = user_id
        return self._send("identify", {"userId": user_id, "traits": traits})

    def track(self, event: str, properties: dict[str, Any], *, user_id: str | None = None) -> httpx.Response:
        msg: dict[str, Any] = {"event": event, "properties": properties}
        if user_id:
            msg["userId"] = user_id
        return self._send("track", msg)


class RudderBeacon:
    """RudderStack's JS SDK leaving a page: ``navigator.sendBeacon(<dataplane>/beacon/v1/batch?writeKey=…)``
    with a string body (``text/plain;charset=UTF-8``) ``{"batch": [...], "sentAt"}``; events in
    RudderStack's shape (``channel``, ``originalTimestamp``, ``rudderId``)."""

    def __init__(self, shop: Shop, origin: str = SHOP_ORIGIN, write_key: str | None = None) -> None:
        self.base, self.origin, self.write_key = shop.collector, origin, write_key or shop.browser_key
        self.anonymous_id = str(uuid.uuid4())

    def send(self, events: list[dict[str, Any]]) -> httpx.Response:
        batch = [
            {
                "channel": "web",
                "context": {"library": {"name": "RudderLabs JavaScript SDK", "version": "3.11.0"},
                            "userAgent": CHROME_UA, "locale": "en-GB"},
                "anonymousId": self.anonymous_id,
                "messageId": str(uuid.uuid4()),
                "rudderId": str(uuid.uuid4()),
                "originalTimestamp": now_iso(),
                "integrations": {"All": True},
                **event,
            }
            for event in events
        ]  # fmt: skip
        headers = {"Content-Type": "text/plain;charset=UTF-8", "Origin": self.origin, "User-Agent": CHROME_UA}
        body = json.dumps({"batch": batch, "sentAt": now_iso()})
        return httpx.post(f"{self.base}/beacon/v1/batch", params={"writeKey": self.write_key}, content=body,
                          headers=headers, timeout=30)  # fmt: skip


# --- the mailbox -----------------------------------------------------------------------------


@dataclass
class Message:
    """One ``.eml`` file as a mail client sees it."""

    path: Path
    raw: bytes = field(repr=False)

    def headers(self) -> list[tuple[str, str]]:
        """The header fields as they are on the wire, unfolded (RFC 5322 §2.2.3: CRLF before
        whitespace removed), not decoded."""
        head = self.raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0].decode("ascii", errors="replace")
        unfolded = re.sub(r"\r?\n(?=[ \t])", "", head)
        fields = []
        for line in unfolded.splitlines():
            name, _, value = line.partition(":")
            fields.append((name.strip(), value.strip()))
        return fields

    def header(self, name: str) -> str | None:
        """The raw (unfolded, undecoded) value of the first header field of that name."""
        return next((value for key, value in self.headers() if key.lower() == name.lower()), None)

    @property
    def parsed(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=policy.default)  # type: ignore[return-value]

    @property
    def subject(self) -> str:
        """As the client displays it (the subject is the one header clients decode)."""
        return str(self.parsed["Subject"])

    @property
    def recipient(self) -> str:
        return self.header("X-Sink-Rcpt-To") or ""

    def text(self) -> str:
        part = self.parsed.get_body(("plain",))
        return part.get_content() if part is not None else ""  # type: ignore[no-any-return]

    def html(self) -> str:
        part = self.parsed.get_body(("html",))
        return part.get_content() if part is not None else ""  # type: ignore[no-any-return]


class Mailbox:
    """The SMTP sink's directory (``<data dir>/mail``): every message the stack sent."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def messages_to(self, address: str) -> list[Message]:
        found = []
        for path in sorted(self.directory.glob("*.eml")):
            raw = path.read_bytes()
            message = Message(path, raw)
            if message.recipient.lower() == address.lower():
                found.append(message)
        return found

    def wait_for(self, address: str, subject: str = "", count: int = 1, timeout_s: float = 30.0) -> list[Message]:
        """The messages to ``address`` whose subject contains ``subject``, once there are ``count``."""

        def matching() -> list[Message]:
            return [m for m in self.messages_to(address) if subject in m.subject]

        found = eventually(lambda: matching() if len(matching()) >= count else [], timeout_s)
        assert len(found) >= count, f"{address} got {[m.subject for m in self.messages_to(address)]}"
        return found


# --- the interaction API ---------------------------------------------------------------------

FINAL_STATUSES = ("sent", "done", "suppressed", "cancelled", "failed")


class InteractionApi:
    """The interaction service's REST API with a Bearer token."""

    def __init__(self, shop: Shop, token: str | None = None) -> None:
        self.http = httpx.Client(base_url=shop.interaction, timeout=30,
                                 headers={"Authorization": f"Bearer {token or shop.api_token}"})  # fmt: skip

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return self.http.post(path, json=body, **kwargs)

    def put(self, path: str, body: Any) -> httpx.Response:
        return self.http.put(path, json=body)

    def patch(self, path: str, body: Any) -> httpx.Response:
        return self.http.patch(path, json=body)

    def delete(self, path: str) -> httpx.Response:
        return self.http.delete(path)

    def decisions(self, customer_id: str, **params: Any) -> list[dict[str, Any]]:
        response = self.get("/v1/decisions", customer_id=customer_id, limit=1000, **params)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def decision(self, customer_id: str, rule_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """The rule's decision for the customer once it is final (sent, suppressed, cancelled, …)."""

        def final() -> dict[str, Any] | None:
            mine = [d for d in self.decisions(customer_id) if d["rule_id"] == rule_id]
            return next((d for d in mine if d["status"] in FINAL_STATUSES), None)

        found = eventually(final, timeout_s)
        assert found, f"no final decision of {rule_id} for {customer_id}: {self.decisions(customer_id)}"
        return found

    def customer(self, customer_id: str) -> dict[str, Any]:
        response = self.get(f"/v1/customers/{customer_id}")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


class Staff:
    """A signed-in person at the console in Chromium; ``problems`` collects what the browser's
    console reported (a script error, a Content-Security-Policy refusal): a story ends with none."""

    def __init__(self, shop: Shop, browser: Any, email: str, password: str, *, width: int = 1280) -> None:
        self.email, self.password = email, password
        self.context = browser.new_context(base_url=shop.interaction, viewport={"width": width, "height": 900})
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", self._console_message)
        self.page.on("pageerror", lambda exc: self.problems.append(str(exc)))

    def _console_message(self, message: Any) -> None:
        # A refused form answers 422 with the form and its inline messages: the browser logs
        # the status, which is the console's answer working, not a problem.
        if message.type == "error" and "status of 422" not in message.text:
            self.problems.append(message.text)

    def sign_in(self) -> Staff:
        page = self.page
        page.goto("/console")
        assert "/console/sign-in" in page.url, page.url
        page.get_by_label("Email").fill(self.email)
        page.get_by_label("Password").fill(self.password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/console")
        return self

    def close(self) -> None:
        self.context.close()


# --- the email service providers -------------------------------------------------------------


def _tags_from_json_header(value: str | None, *path: str) -> dict[str, str]:
    if not value:
        return {}
    try:
        document: Any = json.loads(value)
        for key in path:
            document = document.get(key, {})
    except (ValueError, AttributeError):
        return {}
    return {str(k): str(v) for k, v in document.items()} if isinstance(document, dict) else {}


class SendGrid:
    """SendGrid relaying our message: it reads the custom args from ``X-SMTPAPI``
    (``unique_args``, the SMTP API's way) and returns them as top-level keys of each Event
    Webhook event; the webhook is ECDSA-signed (Signed Event Webhook)."""

    def __init__(self, shop: Shop) -> None:
        self.url = shop.collector + "/v1/email/events/sendgrid"

    last_event_id = ""

    def _new_event_id(self) -> str:
        self.last_event_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        return self.last_event_id

    @property
    def last_message_id(self) -> str:
        """The ``messageId`` the collector gives the last event (``sendgrid:<sg_event_id>``)."""
        return f"sendgrid:{self.last_event_id}"

    @staticmethod
    def custom_args(message: Message) -> dict[str, str]:
        header = message.header("X-SMTPAPI")
        return _tags_from_json_header(header, "unique_args") or _tags_from_json_header(header, "custom_args")

    def post(self, events: list[dict[str, Any]]) -> httpx.Response:
        body = json.dumps(events).encode()
        signature, signed_at = esp_signing.sendgrid_signature(body, time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "SendGrid Event API",
            "X-Twilio-Email-Event-Webhook-Signature": signature,
            "X-Twilio-Email-Event-Webhook-Timestamp": signed_at,
        }
        return httpx.post(self.url, content=body, headers=headers, timeout=30)

    def bounce(self, message: Message) -> httpx.Response:
        event = {
            "email": message.recipient,
            "timestamp": int(time.time()),
            "event": "bounce",
            "type": "bounce",
            "bounce_classification": "Invalid Address",
            "reason": "550 5.1.1 The email account that you tried to reach does not exist",
            "status": "5.1.1",
            "smtp-id": message.header("Message-ID"),
            "sg_event_id": self._new_event_id(),
            "sg_message_id": f"{secrets.token_urlsafe(16)}.filterdrecv-1-1",
            **self.custom_args(message),
        }
        return self.post([event])


class AmazonSes:
    """Amazon SES relaying our message: tags from ``X-SES-MESSAGE-TAGS`` (``name=value, …``)
    come back in ``mail.tags``; the event is published to SNS, which signs the envelope
    (SignatureVersion 2) with the certificate at ``SigningCertURL``."""

    def __init__(self, shop: Shop) -> None:
        self.url, self.cert_url = shop.collector + "/v1/email/events/ses", shop.sns_cert_url

    @staticmethod
    def message_tags(message: Message) -> dict[str, list[str]]:
        tags: dict[str, list[str]] = {}
        for pair in (message.header("X-SES-MESSAGE-TAGS") or "").split(","):
            name, _, value = pair.strip().partition("=")
            if name and value:
                tags[name.strip()] = [value.strip()]
        return tags

    last_message_id = ""
    """The ``messageId`` the collector gives the last event (``ses:<SNS MessageId>:0``)."""

    def publish(self, record: dict[str, Any]) -> httpx.Response:
        sns_message_id = str(uuid.uuid4())
        self.last_message_id = f"ses:{sns_message_id}:0"
        envelope = {
            "Type": "Notification",
            "MessageId": sns_message_id,
            "TopicArn": SES_TOPIC_ARN,
            "Message": json.dumps(record),
            "Timestamp": now_iso(),
            "SignatureVersion": "2",
            "SigningCertURL": self.cert_url,
            "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
        }
        esp_signing.sns_sign(envelope)
        headers = {
            "Content-Type": "text/plain; charset=UTF-8",
            "User-Agent": "Amazon Simple Notification Service Agent",
            "x-amz-sns-message-type": "Notification",
            "x-amz-sns-message-id": envelope["MessageId"],
            "x-amz-sns-topic-arn": SES_TOPIC_ARN,
        }
        return httpx.post(self.url, content=json.dumps(envelope), headers=headers, timeout=30)

    def bounce(self, message: Message) -> httpx.Response:
        sent_at = now_iso()
        tags = {"ses:configuration-set": ["ecrm"], "ses:from-domain": ["ecrm.localhost"], **self.message_tags(message)}
        record = {
            "eventType": "Bounce",
            "bounce": {
                "feedbackId": f"{secrets.token_hex(16)}-000000",
                "bounceType": "Permanent",
                "bounceSubType": "General",
                "bouncedRecipients": [{"emailAddress": message.recipient, "action": "failed", "status": "5.1.1",
                                       "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
                "timestamp": sent_at,
                "reportingMTA": "dsn; a1-2.smtp-out.eu-west-1.amazonses.com",
            },
            "mail": {
                "timestamp": sent_at,
                "source": "hello@ecrm.localhost",
                "messageId": f"{secrets.token_hex(16)}-000000",
                "destination": [message.recipient],
                "headersTruncated": False,
                "tags": tags,
            },
        }  # fmt: skip
        return self.publish(record)


class Mailgun:
    """Mailgun relaying our message: user variables from ``X-Mailgun-Variables`` (JSON) come
    back as ``event-data["user-variables"]``; the webhook is HMAC-signed with the signing key."""

    def __init__(self, shop: Shop) -> None:
        self.url = shop.collector + "/v1/email/events/mailgun"

    @staticmethod
    def user_variables(message: Message) -> dict[str, str]:
        return _tags_from_json_header(message.header("X-Mailgun-Variables"))

    def post(self, event_data: dict[str, Any]) -> httpx.Response:
        body = esp_signing.mailgun_body(
            event_data, key=MAILGUN_SIGNING_KEY, timestamp=time.time(), token=secrets.token_hex(25)
        )
        headers = {"Content-Type": "application/json", "User-Agent": "mailgun/treq-16.12.0"}
        return httpx.post(self.url, content=body, headers=headers, timeout=30)

    last_message_id = ""
    """The ``messageId`` the collector gives the last event (``mailgun:<event id>``)."""

    def bounce(self, message: Message) -> httpx.Response:
        event_id = secrets.token_urlsafe(16)
        self.last_message_id = f"mailgun:{event_id}"
        event_data = {
            "event": "failed",
            "id": event_id,
            "timestamp": time.time(),
            "severity": "permanent",
            "reason": "bounce",
            "recipient": message.recipient,
            "log-level": "error",
            "delivery-status": {"code": 550, "message": "5.1.1 The email account does not exist",
                                "description": "", "attempt-no": 1},
            "message": {"headers": {"to": message.recipient, "from": "hello@ecrm.localhost", "subject": message.subject,
                                    "message-id": (message.header("Message-ID") or "").strip("<>")}},
            "user-variables": self.user_variables(message),
        }  # fmt: skip
        return self.post(event_data)


# --- the data team ---------------------------------------------------------------------------


class DataTeam:
    """A ClickHouse client on the stack's HTTP interface, reading the documented views."""

    def __init__(self, shop: Shop) -> None:
        self.client = clickhouse_connect.get_client(host="127.0.0.1", port=shop.clickhouse_port)

    def rows(self, sql: str, **parameters: Any) -> list[dict[str, Any]]:
        result = self.client.query(sql, parameters=parameters)
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

    def profile(self, customer_id: str) -> dict[str, Any] | None:
        found = self.rows("SELECT * FROM ecrm.customer_profiles WHERE customer_id = {c:String}", c=customer_id)
        return found[0] if found else None

    def events(self, customer_id: str) -> list[dict[str, Any]]:
        return self.rows(
            "SELECT * FROM ecrm.customer_events WHERE customer_id = {c:String} ORDER BY timestamp", c=customer_id
        )
