"""The console's role table (``console.access.PAGES``) against the routes the app serves and
the API routes each form calls; signing in and out; CSRF; the security headers."""

from __future__ import annotations

import re

from fastapi.routing import APIRoute

from ecrm_interaction.console.access import ACTIONS, PAGES
from ecrm_interaction.console.app import routes_of

RANK = {"viewer": 0, "agent": 1, "marketer": 2, "admin": 3}


def _console_routes(app) -> set[tuple[str, str]]:
    return {
        (method, route.path)
        for route in routes_of(app.routes)
        if isinstance(route, APIRoute) and route.path.startswith("/console")
        for method in route.methods
    }


def _api_role(app, method: str, path: str) -> str:
    """The least role of an API route, read from its ``require(role)`` dependency."""
    for route in routes_of(app.routes):
        if route.path == path and method in route.methods:
            roles = [d.call.role for d in route.dependant.dependencies if hasattr(d.call, "role")]
            roles += [d.call.role for dep in route.dependant.dependencies for d in dep.dependencies
                      if hasattr(d.call, "role")]  # fmt: skip
            return roles[0] if roles else "public"
    raise AssertionError(f"the console calls {method} {path}, which the API does not serve")


def test_every_console_route_is_in_the_role_table(console_app) -> None:
    app, _ = console_app
    served = _console_routes(app)
    assert served - set(PAGES) == set(), f"add these console routes to console.access.PAGES: {served - set(PAGES)}"
    assert set(PAGES) - served == set(), f"PAGES lists routes the console no longer serves: {set(PAGES) - served}"


def test_every_form_needs_the_role_of_the_api_route_it_calls(console_app) -> None:
    app, _ = console_app
    for (method, path), least in PAGES.items():
        if method != "GET" and least != "public":
            assert (method, path) in ACTIONS, f"name the API route {method} {path} calls in console.access.ACTIONS"
    for console_route, (api_method, api_path) in ACTIONS.items():
        assert PAGES[console_route] == _api_role(app, api_method, api_path), (console_route, api_method, api_path)


async def test_signed_out_visitors_are_sent_to_sign_in_and_refused_roles_get_403(console_app, console_as) -> None:
    app, _ = console_app
    viewer = await console_as("viewer")
    for (method, path), least in sorted(PAGES.items()):
        if least == "public":
            continue
        url = re.sub(r"\{[^}]+\}", "x", path)
        import httpx

        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console.test") as anon:
            answer = await anon.request(method, url)
            assert answer.status_code in (303, 401), (method, path, answer.status_code)
        if RANK[least] > RANK["viewer"]:
            refused = await viewer.request(method, url, data={"csrf_token": viewer.csrf})
            assert refused.status_code == 403, (method, path, refused.status_code)


async def test_a_change_without_the_session_csrf_token_is_refused(console_as) -> None:
    marketer = await console_as("marketer")
    body = {"id": "t-csrf", "subject": "Hi", "text": "Hello"}
    refused = await marketer.put("/v1/templates/t-csrf", json=body)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "csrf_token_missing_or_wrong")
    wrong = await marketer.put("/v1/templates/t-csrf", json=body, headers={"X-CSRF-Token": "forged"})
    assert wrong.status_code == 403
    done = await marketer.put("/v1/templates/t-csrf", json=body, headers={"X-CSRF-Token": marketer.csrf})
    assert done.status_code == 200, done.text


async def test_pages_carry_a_strict_content_security_policy(console_as) -> None:
    viewer = await console_as("viewer")
    home = await viewer.get("/console")
    assert home.status_code == 200
    policy = home.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "unsafe" not in policy
    assert home.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in home.text and " style=" not in home.text, "no inline script or style"


async def test_signing_out_ends_the_session_and_a_disabled_user_is_out(console_app, console_as) -> None:
    app, _ = console_app
    agent = await console_as("agent")
    cookie = agent.cookies.get("ecrm_session")
    out = await agent.post("/console/sign-out", data={"csrf_token": agent.csrf})
    assert (out.status_code, out.headers["location"]) == (303, "/console/sign-in")
    import httpx

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://console.test", cookies={"ecrm_session": cookie}
    ) as thief:
        again = await thief.get("/v1/me")
        assert again.status_code == 401

    admin = await console_as("admin")
    other = await console_as("viewer")
    disabled = await admin.patch(f"/v1/users/{other.email}", json={"disabled": True},
                                 headers={"X-CSRF-Token": admin.csrf})  # fmt: skip
    assert disabled.status_code == 200, disabled.text
    assert (await other.get("/console")).status_code == 303


async def test_a_wrong_password_is_refused_inline_and_keeps_the_email(console_as, console_app) -> None:
    app, _ = console_app
    await console_as("viewer")
    import httpx

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console.test") as visitor:
        answer = await visitor.post("/console/sign-in", data={"email": "nobody@example.com", "password": "x"})
        assert answer.status_code == 422
        assert 'role="alert"' in answer.text and 'value="nobody@example.com"' in answer.text
        empty = await visitor.post("/console/sign-in", data={"email": "", "password": ""})
        assert "Email: enter the email you sign in with" in empty.text
        redirect = await visitor.get("/console/sign-in", params={"next": "https://evil.example.com/"})
        assert 'value="/console"' in redirect.text, "no open redirect after signing in"


async def test_guessing_a_password_is_slowed_down(console_app, console_as) -> None:
    app, _ = console_app
    victim = await console_as("admin")
    import httpx

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console.test") as guesser:
        answers = [
            await guesser.post("/v1/sessions", json={"email": victim.email, "password": f"guess {n}"})
            for n in range(12)
        ]
    assert [a.status_code for a in answers[:9]] == [401] * 9, "the first sign-in was the fixture's"
    assert answers[-1].status_code == 429 and int(answers[-1].headers["retry-after"]) >= 1
    page = await guesser_page(app, victim.email)
    assert "Too many attempts for this email" in page


async def guesser_page(app, email: str) -> str:
    import httpx

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console.test") as visitor:
        answer = await visitor.post("/console/sign-in", data={"email": email, "password": "another guess"})
        return answer.text


def test_the_first_admin_is_made_with_the_cli(tmp_path) -> None:
    import subprocess
    import sys

    env = {**__import__("os").environ, "DATABASE_URL": f"sqlite:///{tmp_path}/cli.sqlite", "LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "ecrm_interaction", "users", "add", "Boss@Example.com", "--role", "admin",
               "--password-stdin"]  # fmt: skip
    short = subprocess.run(command, input="short\n", capture_output=True, text=True, env=env, timeout=60)
    assert short.returncode != 0 and "at least 12 characters" in short.stderr
    made = subprocess.run(command, input="a long enough password\n", capture_output=True, text=True, env=env,
                          timeout=60)  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "created boss@example.com (admin)"
    again = subprocess.run(command, input="a long enough password\n", capture_output=True, text=True, env=env,
                           timeout=60)  # fmt: skip
    assert again.returncode != 0 and "--update" in again.stderr
    listed = subprocess.run([sys.executable, "-m", "ecrm_interaction", "users", "list"], capture_output=True,
                            text=True, env=env, timeout=60)  # fmt: skip
    assert listed.stdout.split("\t")[:2] == ["boss@example.com", "admin"]


def test_passwords_are_argon2id_hashes_with_its_default_parameters_rehashed_at_sign_in(
    console_app, real_password_hashing, monkeypatch
) -> None:
    from argon2 import PasswordHasher, extract_parameters, profiles

    from ecrm_interaction.storage import users

    _app, store = console_app
    production = users._hasher
    monkeypatch.setattr(users, "_hasher", PasswordHasher.from_parameters(profiles.CHEAPEST))
    store.write(users.add_user, "old@example.com", "Old", "viewer", "a long enough password", "test")
    monkeypatch.setattr(users, "_hasher", production)
    store.write(users.add_user, "new@example.com", "New", "viewer", "a long enough password", "test")

    def stored(email: str) -> str:
        with store.sessions() as session:
            return users.user_by_email(session, email).password_hash

    assert stored("new@example.com").startswith("$argon2id$") and "long enough" not in stored("new@example.com")
    assert extract_parameters(stored("new@example.com")) == profiles.get_default_parameters()
    assert extract_parameters(stored("old@example.com")) == profiles.CHEAPEST
    assert store.write(users.authenticate, "old@example.com", "a wrong password") is None
    assert store.write(users.authenticate, "old@example.com", "a long enough password") is not None
    assert extract_parameters(stored("old@example.com")) == profiles.get_default_parameters(), "rehashed at sign-in"
