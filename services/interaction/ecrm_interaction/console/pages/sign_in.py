"""Signing in and out: the form posts to the console, which opens the session through the API
(``POST /v1/sessions``) and hands its cookie to the browser."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ecrm_interaction.console.access import StaffDep
from ecrm_interaction.console.api import ConsoleApi
from ecrm_interaction.console.rendering import render

PAGES = {
    ("GET", "/console/sign-in"): "public",
    ("POST", "/console/sign-in"): "public",
    ("POST", "/console/sign-out"): "viewer",
}
ACTIONS = {("POST", "/console/sign-out"): ("DELETE", "/v1/sessions")}


def _safe_next(value: str) -> str:
    """Only a path of the console: never another site (an open redirect)."""
    return value if value.startswith("/console") and not value.startswith("//") else "/console"


def router() -> APIRouter:
    routes = APIRouter(include_in_schema=False)

    @routes.get("/console/sign-in")
    async def sign_in_page(request: Request, next: str = "/console") -> Response:
        return render(request, "sign_in.html", {"next": _safe_next(next), "email": "", "errors": {}})

    @routes.post("/console/sign-in")
    async def sign_in(request: Request) -> Response:
        form = await request.form()
        email, password = str(form.get("email", "")).strip(), str(form.get("password", ""))
        next_path = _safe_next(str(form.get("next", "/console")))
        errors: dict[str, str] = {}
        if not email:
            errors["email"] = "enter the email you sign in with"
        if not password:
            errors["password"] = "enter your password"
        if not errors:
            answer = await ConsoleApi(request).call("POST", "/v1/sessions", json={"email": email, "password": password})
            if answer.ok:
                redirect = RedirectResponse(next_path, status_code=303)
                redirect.headers["set-cookie"] = answer.headers["set-cookie"]
                return redirect
            if answer.status == 429:
                wait = answer.headers.get("retry-after", "30")
                errors["$"] = f"Too many attempts for this email: try again in {wait} seconds."
            else:
                errors["$"] = "That email and password do not match an account that may sign in."
        return render(request, "sign_in.html", {"next": next_path, "email": email, "errors": errors}, status=422)

    @routes.post("/console/sign-out")
    async def sign_out(request: Request, staff: StaffDep) -> Response:
        form = await request.form()
        answer = await staff.acting(request, str(form.get("csrf_token", ""))).call("DELETE", "/v1/sessions")
        redirect = RedirectResponse("/console/sign-in", status_code=303)
        if "set-cookie" in answer.headers:
            redirect.headers["set-cookie"] = answer.headers["set-cookie"]
        return redirect

    return routes
