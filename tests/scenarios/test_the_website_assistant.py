"""The website assistant on a shop's pages, in Chromium, through the whole stack: the shop's
page carries one script tag (the development stack's browser source, the shipped example
knowledge base). A visitor asks how to send shoes back and reads the returns article; Ada,
signed in (the shop's back end put her identity token in the tag), asks where her parcel is
and hears its shipment status from the events her orders sent through the collector; Bob,
signed in too, names Ada's order and learns nothing of it, and a forged token is refused. A
visitor asks for a person: the case appears in the console with the transcript, an agent
answers, the answer shows in the widget, and the assistant stays quiet from then on."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect
from scenarios.users import AnalyticsPython, DataTeam, InteractionApi, Shop, eventually

from ecrm_embedded.net import free_port
from ecrm_embedded.stack import DEV_IDENTITY_SECRET, DEV_WEBSITE_KEY
from ecrm_interaction.assistant.identity import identity_token

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.kafka]

RUN = uuid.uuid4().hex[:6]
ADA, BOB = f"chat-ada-{RUN}", f"chat-bob-{RUN}"
ADA_ORDER, BOB_ORDER = f"7{RUN[:4].encode().hex()[:6]}1", f"8{RUN[:4].encode().hex()[:6]}2"


def shop_page(interaction: str, user: str | None = None, token: str | None = None, lang: str = "en") -> bytes:
    identity = f' data-user-id="{user}" data-user-token="{token}"' if user else ""
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>The shop</title>'
        f'<script src="{interaction}/v1/chat.js" data-write-key="{DEV_WEBSITE_KEY}"{identity} async></script>'
        "</head><body><h1>Boots and shirts</h1></body></html>"
    ).encode()


@pytest.fixture(scope="module")
def website(shop: Shop) -> Iterator[str]:
    """The shop's own web server (another origin than the interaction service)."""
    pages = {
        "/": shop_page(shop.interaction),
        "/account/ada": shop_page(shop.interaction, ADA, identity_token(DEV_IDENTITY_SECRET, ADA)),
        "/account/bob": shop_page(shop.interaction, BOB, identity_token(DEV_IDENTITY_SECRET, BOB)),
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path.split("?")[0])
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def visitor(chromium: Any, url: str) -> tuple[Any, Any, list[str]]:
    context = chromium.new_context()
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.goto(url)
    page.get_by_role("button", name="Chat with us").click()
    dialog = page.get_by_role("dialog", name="Help")
    expect(dialog).to_contain_text("Automated assistant")
    expect(dialog.get_by_role("log")).to_contain_text("automated assistant")  # the greeting says it too
    return context, dialog, problems


def ask(dialog: Any, question: str) -> None:
    dialog.get_by_label("Type your question").fill(question)
    dialog.get_by_role("button", name="Send").click()


def test_visitors_get_articles_their_own_orders_and_a_person(
    shop: Shop, api: InteractionApi, data_team: DataTeam, chromium: Any, website: str, staff: Any
) -> None:
    backend = AnalyticsPython(shop)
    backend.identify(ADA, {"email": f"{ADA}@example.com", "firstName": "Ada"})
    backend.track(ADA, "Order Completed", {"order_id": ADA_ORDER, "total": 129.0, "currency": "EUR"})
    backend.track(
        ADA,
        "Shipment Updated",
        {"order_id": ADA_ORDER, "status": "in_transit", "carrier": "DHL", "tracking_id": f"JD{RUN}"},
    )
    backend.track(BOB, "Order Completed", {"order_id": BOB_ORDER, "total": 15.0, "currency": "EUR"})
    assert backend.flush().status_code == 200

    # An anonymous visitor: a paraphrase finds the returns article.
    context, dialog, problems = visitor(chromium, website + "/")
    ask(dialog, "My new boots don't fit, how can I send them back to you?")
    article = dialog.locator(".article").last
    expect(article).to_have_attribute("data-article-id", "returns-policy")
    # Asking about orders without signing in says how, and reads nothing.
    ask(dialog, "where is my order?")
    expect(dialog.locator(".msg.assistant").last).to_contain_text("sign in")

    # Ada, signed in: her own shipment, from the events in ClickHouse.
    shipped = eventually(
        lambda: data_team.rows(
            f"SELECT count() AS n FROM ecrm.events WHERE customer_id = '{ADA}' AND event = 'Shipment Updated'"
        )[0]["n"],
        timeout_s=60,
    )
    assert shipped, "Ada's shipment reached ClickHouse"
    ada_context, ada_dialog, ada_problems = visitor(chromium, website + "/account/ada")
    ask(ada_dialog, "Hi, where is my parcel right now?")
    answer = ada_dialog.locator(".msg.assistant").last
    expect(answer).to_contain_text(ADA_ORDER)
    expect(answer).to_contain_text("is on its way")
    expect(answer).to_contain_text(f"JD{RUN}")

    # Bob, signed in, names Ada's order: nothing of it is told.
    bob_context, bob_dialog, bob_problems = visitor(chromium, website + "/account/bob")
    ask(bob_dialog, f"What is the status of order {ADA_ORDER}?")
    reply = bob_dialog.locator(".msg.assistant").last
    expect(reply).to_contain_text(f"can't find order {ADA_ORDER}")
    expect(reply).not_to_contain_text("on its way")
    forged = httpx.post(
        f"{shop.interaction}/v1/chat/conversations",
        headers={"Origin": website},
        json={"writeKey": DEV_WEBSITE_KEY, "user_id": ADA, "user_token": identity_token("guess", ADA)},
    )
    assert forged.status_code == 403 and forged.json()["error"]["errors"][0]["field"] == "user_token"

    # The anonymous visitor asks for a person: a case with the transcript; an agent answers.
    dialog.get_by_role("button", name="Talk to a person").click()
    expect(dialog.locator(".notice")).to_contain_text("A person will answer you here.")
    case = eventually(
        lambda: next(
            (c for c in api.get("/v1/cases", limit=50).json() if c["subject"].startswith("Website chat: My new boots")),
            None,
        )
    )
    assert case, "the hand-off opened a case"
    agent = staff("agent")
    page = agent.page
    page.goto(f"/console/cases/{case['id']}")
    chat = page.locator("#chat")
    expect(chat).to_contain_text("My new boots don't fit")
    expect(chat).to_contain_text("waiting for a person")
    chat.get_by_label("Reply (shown in the visitor's chat; the assistant then stays silent)").fill(
        "Hello, this is Lena: I've sent you a return label by email."
    )
    chat.get_by_role("button", name="Send the reply").click()
    expect(page.locator("#chat")).to_contain_text("a person answers")
    expect(dialog.locator(".msg.agent")).to_contain_text("I've sent you a return label", timeout=15_000)

    # From now on the assistant is quiet: the visitor's next question gets no bot answer.
    ask(dialog, "Thanks! And how long does delivery take?")
    expect(dialog.locator(".msg").last).to_contain_text("how long does delivery take")
    page.wait_for_timeout(4000)  # a poll later, still nothing from the assistant
    expect(dialog.locator(".msg").last).to_have_class("msg visitor")
    assert problems == [] and ada_problems == [] and bob_problems == [] and agent.problems == []
    for opened in (context, ada_context, bob_context):
        opened.close()
