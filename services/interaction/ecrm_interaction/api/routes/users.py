"""Console users: list, create, change role, disable, set a password. Admins only."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError

from ecrm_interaction.api.deps import Admin, SessionDep
from ecrm_interaction.api.errors import invalid
from ecrm_interaction.storage import users
from ecrm_interaction.storage.models import ConsoleUser
from ecrm_interaction.storage.store import aware

Role = Literal["viewer", "agent", "marketer", "admin"]
EMAIL = r"^[^@\s]+@[^@\s]+$"


class UserIn(BaseModel):
    email: str = Field(pattern=EMAIL, max_length=320)
    name: str = Field(default="", max_length=200)
    role: Role
    password: str = Field(min_length=users.MIN_PASSWORD_LENGTH, max_length=1000)


class UserChange(BaseModel):
    role: Role | None = None
    disabled: bool | None = None
    password: str | None = Field(default=None, min_length=users.MIN_PASSWORD_LENGTH, max_length=1000)


class UserView(BaseModel):
    email: str
    name: str
    role: str
    created_at: datetime | None
    disabled_at: datetime | None

    @classmethod
    def of(cls, user: ConsoleUser) -> UserView:
        return cls(email=user.email, name=user.name, role=user.role,
                   created_at=aware(user.created_at), disabled_at=aware(user.disabled_at))  # fmt: skip


def router() -> APIRouter:
    routes = APIRouter(tags=["admin"])

    @routes.get("/v1/users")
    def list_users(_who: Admin, session: SessionDep) -> list[UserView]:
        return [UserView.of(u) for u in users.users(session)]

    @routes.post("/v1/users", status_code=201)
    def create_user(user: UserIn, who: Admin, session: SessionDep) -> UserView:
        """409 ``user_exists`` when a user has this email."""
        try:
            created = users.add_user(session, user.email, user.name, user.role, user.password, who.name)
        except IntegrityError as exc:
            raise HTTPException(409, "user_exists") from exc
        except ValueError as exc:
            raise invalid(exc) from exc
        return UserView.of(created)

    @routes.patch("/v1/users/{email}")
    def change_user(email: str, change: UserChange, who: Admin, session: SessionDep) -> UserView:
        """A role change, disabling and a new password each end the user's sessions."""
        user = users.user_by_email(session, email)
        if user is None:
            raise HTTPException(404, "user_not_found")
        if who.user_id == user.id and (change.disabled or (change.role and change.role != "admin")):
            raise HTTPException(409, "cannot_demote_yourself")
        users.update_user(session, user, who.name, role=change.role, disabled=change.disabled)
        if change.password is not None:
            users.set_password(session, user, change.password, who.name)
        return UserView.of(user)

    return routes
