"""Signing in to the staff console, in Chromium: the sign-in form, a wrong password refused
inline, the home page under a strict Content-Security-Policy (no refusal in the browser's
console), the navigation at a phone's width, and signing out ending the session."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from scenarios.users import InteractionApi, Shop, Staff

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def test_a_person_signs_in_sees_home_and_signs_out(shop: Shop, api: InteractionApi, chromium: Any) -> None:
    email, password = "ines@shop.example.com", "a long enough password"
    created = api.post("/v1/users", {"email": email, "name": "Ines", "role": "viewer", "password": password})
    assert created.status_code == 201, created.text

    wrong = Staff(shop, chromium, email, "not her password")
    page = wrong.page
    page.goto("/console")
    assert "/console/sign-in?next=/console" in page.url
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("not her password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text().startswith("That email and password do not match")
    assert page.get_by_label("Email").input_value() == email, "what she typed is kept"
    wrong.close()

    ines = Staff(shop, chromium, email, password, width=390).sign_in()
    page = ines.page
    csp = page.request.get("/console").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.get_by_role("navigation", name="Main").get_by_role("link", name="Customers").is_visible()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content", "the first Tab skips the menu"

    cookie = next(c for c in ines.context.cookies() if c["name"] == "ecrm_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/console/sign-in")
    stolen = httpx.get(f"{shop.interaction}/v1/me", cookies={"ecrm_session": cookie["value"]})
    assert stolen.status_code == 401, "a cookie kept from before signing out no longer works"
    assert ines.problems == [], ines.problems
    ines.close()
