"""Console sign-in: open a session (a signed cookie), end it, and say who is signed in.

``POST /v1/sessions`` with an email and a password sets the ``ecrm_session`` cookie and answers
the session's CSRF token; later requests authenticated by the cookie send that token in
``X-CSRF-Token`` when they change something. ``DELETE /v1/sessions`` signs the user out of
every session (the cookie is cleared and sessions issued before now stop being accepted).
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from ecrm_interaction.api.deps import SessionDep, Viewer, signer_of
from ecrm_interaction.api.sessions import SESSION_COOKIE, SignInThrottle
from ecrm_interaction.storage import audit, users


class SignIn(BaseModel):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1000)


class Me(BaseModel):
    name: str
    role: str
    user: bool
    """False for an API token."""
    csrf_token: str | None = None


def router() -> APIRouter:
    routes = APIRouter(tags=["sessions"])
    throttle = SignInThrottle()

    @routes.post("/v1/sessions", status_code=201, response_model=Me)
    def sign_in(credentials: SignIn, request: Request, session: SessionDep) -> JSONResponse:
        """401 ``invalid_credentials`` for an unknown email, a wrong password or a disabled user
        alike; 429 ``too_many_attempts`` (with ``Retry-After``) past 10 attempts for one email
        in a burst, then one per 30 s."""
        wait_s = throttle.admit(credentials.email)
        if wait_s is not None:
            raise HTTPException(429, "too_many_attempts", headers={"Retry-After": str(wait_s)})
        user = users.authenticate(session, credentials.email, credentials.password)
        if user is None:
            raise HTTPException(401, "invalid_credentials")
        signer = signer_of(request)
        cookie, issued = signer.issue(user.id)
        audit.record(session, user.email, "sign_in", "console_user", user.email, {})
        me = Me(name=user.email, role=user.role, user=True, csrf_token=issued.csrf)
        answer = JSONResponse(me.model_dump(), status_code=201)
        answer.set_cookie(SESSION_COOKIE, cookie, max_age=signer.max_age_s, httponly=True, samesite="lax",
                          secure=signer.secure, path="/")  # fmt: skip
        return answer

    @routes.delete("/v1/sessions", status_code=204)
    def sign_out(who: Viewer, session: SessionDep) -> Response:
        """Ends every session of the signed-in user; a token caller gets 400 (tokens are revoked instead)."""
        if who.user_id is None:
            raise HTTPException(400, "not_a_session")
        user = users.user_by_id(session, who.user_id)
        if user is not None:
            users.end_sessions(session, user)
            audit.record(session, user.email, "sign_out", "console_user", user.email, {})
        answer = Response(status_code=204)
        answer.delete_cookie(SESSION_COOKIE, path="/")
        return answer

    @routes.get("/v1/me")
    async def me(who: Viewer) -> Me:
        """Who is calling, with the session's CSRF token for a console user."""
        return Me(name=who.name, role=who.role, user=who.user_id is not None, csrf_token=who.csrf)

    return routes
