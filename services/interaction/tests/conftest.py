import pytest

from ecrm_interaction.storage.store import Store, make_engine, migrate


@pytest.fixture(autouse=True)
def cheap_password_hashing(request, monkeypatch):
    """Console passwords hashed with argon2's cheapest parameters (``argon2.profiles.CHEAPEST``)
    in these tests: the default ones cost about 0.2 s a sign-in, by design, and the console
    tests sign in a few hundred times. A test that asks for ``real_password_hashing`` keeps
    the production hasher."""
    if "real_password_hashing" in request.fixturenames:
        return
    from argon2 import PasswordHasher, profiles

    from ecrm_interaction.storage import users

    monkeypatch.setattr(users, "_hasher", PasswordHasher.from_parameters(profiles.CHEAPEST))


@pytest.fixture
def real_password_hashing():
    """The production password hasher (see ``cheap_password_hashing``)."""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def relational_store(request, tmp_path):
    """A migrated store on SQLite, and on the session's PostgreSQL (a fresh database)."""
    url = f"sqlite:///{tmp_path}/db.sqlite" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    migrate(engine)
    yield Store(engine)
    engine.dispose()


@pytest.fixture
def console_app(tmp_path):
    """The interaction app on SQLite (no worker, no Kafka), for the console's page tests."""
    from ecrm_interaction.api.app import create_app
    from ecrm_interaction.settings import InteractionSettings

    settings = InteractionSettings(database_url=f"sqlite:///{tmp_path}/console.sqlite")
    engine = make_engine(settings.database_url)
    migrate(engine)
    store = Store(engine)
    yield create_app(settings, store, worker=None), store
    engine.dispose()


@pytest.fixture
async def console_as(console_app):
    """``await console_as("marketer")``: an httpx client signed in to the console as a new user
    of that role (the sign-in form posted as a browser posts it); ``client.csrf`` is the
    session's CSRF token, for the forms the test posts."""
    import uuid

    import httpx

    from ecrm_interaction.storage import users

    app, store = console_app
    clients = []

    async def sign_in(role: str):
        email = f"{role}-{uuid.uuid4().hex[:6]}@example.com"
        store.write(users.add_user, email, role.title(), role, "a long enough password", "test")
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console.test")
        signed = await client.post("/console/sign-in", data={"email": email, "password": "a long enough password"})
        assert signed.status_code == 303, signed.text
        client.csrf = (await client.get("/v1/me")).json()["csrf_token"]
        client.email = email
        clients.append(client)
        return client

    yield sign_in
    for client in clients:
        await client.aclose()
