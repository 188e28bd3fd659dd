"""``ecrm-interaction``: migrate the database, load rules, serve the API, consume and dispatch."""

from __future__ import annotations

import email
import sys
from datetime import UTC, datetime
from email import policy as email_policy
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random

from ecrm_interaction.engine.rules_file import load_rules_file
from ecrm_interaction.engine.unsubscribe import (
    InvalidUnsubscribeToken,
    token_of_mail,
    verify_unsubscribe,
)
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage import customers as customer_store
from ecrm_interaction.storage import rules as rule_store
from ecrm_interaction.storage import suppressions as suppression_store
from ecrm_interaction.storage import tokens, users
from ecrm_interaction.storage.store import Store, make_engine, migrate
from ecrm_schemas.catalog import CatalogEvent
from ecrm_schemas.kafka_producer import ReliableProducer
from ecrm_schemas.logs import configure_logging

if TYPE_CHECKING:
    from ecrm_interaction.privacy.requests import PrivacyRequests
    from ecrm_schemas.suppressions import SuppressionList

# The service's runtime (the API app, consumer, dispatcher, ClickHouse) is imported by the
# commands that run it: the administrative ones (users, tokens, suppressions) start in a
# fraction of the time.

cli = typer.Typer(add_completion=False, help="The eCRM interaction service.", no_args_is_help=True)
tokens_cli = typer.Typer(add_completion=False, help="REST API tokens.", no_args_is_help=True)
cli.add_typer(tokens_cli, name="tokens")
suppressions_cli = typer.Typer(
    add_completion=False, help="Addresses not mailed (hard bounces, complaints).", no_args_is_help=True
)
cli.add_typer(suppressions_cli, name="suppressions")
users_cli = typer.Typer(add_completion=False, help="People who sign in to the staff console.", no_args_is_help=True)
cli.add_typer(users_cli, name="users")
privacy_cli = typer.Typer(add_completion=False, help="Privacy requests (GDPR/CCPA).", no_args_is_help=True)
cli.add_typer(privacy_cli, name="privacy")


def _store(settings: InteractionSettings) -> Store:
    engine = make_engine(settings.database_url)
    migrate(engine)
    return Store(engine)


def _privacy(
    settings: InteractionSettings, store: Store, producer: ReliableProducer, suppressions: SuppressionList
) -> PrivacyRequests:
    from ecrm_interaction.delivery.recommendations import clickhouse_client
    from ecrm_interaction.privacy.requests import PrivacyRequests

    return PrivacyRequests(
        clickhouse_client(settings), settings.clickhouse_database, store, producer, suppressions,
        cluster=settings.clickhouse_cluster, settle_s=settings.interaction_erasure_settle_s,
    )  # fmt: skip


def _privacy_from_environment() -> PrivacyRequests:
    settings = InteractionSettings()
    configure_logging("interaction", settings.log_level, settings.log_format)
    if not settings.clickhouse_url:
        raise typer.BadParameter("privacy requests need ClickHouse: set CLICKHOUSE_URL")
    from ecrm_schemas.suppressions import SuppressionList

    return _privacy(settings, _store(settings), ReliableProducer(settings.kafka_client_config()), SuppressionList())


def _load(store: Store, path: Path, actor: str) -> tuple[int, int]:
    rules = load_rules_file(path)
    with store.sessions.begin() as session:
        rule_store.upsert_rules(session, rules.templates, rules.rules, actor)
        if rules.loyalty is not None:
            rule_store.set_loyalty_program(session, rules.loyalty, actor)
    return len(rules.templates), len(rules.rules)


@retry(retry=retry_if_exception_type(IntegrityError), stop=stop_after_attempt(5), wait=wait_random(0.05, 0.5),
       reraise=True)  # fmt: skip
def _load_at_start(store: Store, path: Path) -> None:
    """Replicas starting together load the same rules file into one database: an insert can lose
    the race to another replica's (a crashed replica left the other every partition in
    ``tests/test_scale_out.py``); the next attempt finds those rows and updates them."""
    _load(store, path, "rules-file")


@cli.command()
def serve() -> None:
    """Apply migrations, load the rules file if set, then consume, dispatch and serve the API."""
    import uvicorn

    from ecrm_interaction.api.app import create_app
    from ecrm_interaction.api.services.warehouse import Warehouse
    from ecrm_interaction.consumer.segment_definitions import follow_segment_definitions
    from ecrm_interaction.consumer.worker import InteractionWorker
    from ecrm_interaction.delivery.dispatcher import Dispatcher
    from ecrm_interaction.delivery.recommendations import clickhouse_client, clickhouse_services
    from ecrm_schemas.suppressions import follow_suppressions

    settings = InteractionSettings()
    configure_logging("interaction", settings.log_level, settings.log_format)
    store = _store(settings)
    if settings.interaction_rules_file is not None:
        _load_at_start(store, settings.interaction_rules_file)
    suppressions, _follower = follow_suppressions(settings.kafka_client_config())
    worker = InteractionWorker(settings, store, suppressions=suppressions)
    recommender, recent_events = clickhouse_services(settings)
    warehouse = (
        Warehouse(clickhouse_client(settings), settings.clickhouse_database) if settings.clickhouse_url else None
    )
    dispatcher = Dispatcher(settings, store, worker.producer, recommender, warehouse)
    privacy = _privacy(settings, store, worker.producer, suppressions) if settings.clickhouse_url else None
    segment_definitions, _definitions_follower = follow_segment_definitions(settings.kafka_client_config())
    app = create_app(
        settings, store, worker, dispatcher, recommender, recent_events, privacy, segment_definitions, warehouse
    )
    uvicorn.run(
        app,
        host=settings.interaction_host,
        port=settings.interaction_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


@cli.command("migrate")
def migrate_command() -> None:
    """Apply the relational migrations to DATABASE_URL."""
    settings = InteractionSettings()
    configure_logging("interaction", settings.log_level, settings.log_format)
    _store(settings)


@cli.command("load-rules")
def load_rules(path: Path) -> None:
    """Create or update the rules, templates and loyalty program of a YAML file."""
    try:
        templates, rules = _load(_store(InteractionSettings()), path, "cli")
    except ValidationError as exc:  # each error: the field in the file, the rule, the message
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['type']}: {e['msg']}" for e in exc.errors())
        raise typer.BadParameter(problems, param_hint=str(path)) from None
    typer.echo(f"loaded {templates} templates and {rules} rules")


@cli.command("unsubscribe-mail")
def unsubscribe_mail(
    files: Annotated[list[Path] | None, typer.Argument(help=".eml files; none: one message on stdin.")] = None,
) -> None:
    """Unsubscribe whoever mailed INTERACTION_UNSUBSCRIBE_MAILBOX (List-Unsubscribe's mailto:).

    The subject carries the link's signed token, so only the recipient of our message can
    unsubscribe its customer. For an MTA, pipe the mailbox here (Postfix alias:
    ``unsubscribe: "|ecrm-interaction unsubscribe-mail"``). Mail without a valid token is
    reported and ignored.
    """
    from ecrm_interaction.delivery.dispatcher import Dispatcher

    settings = InteractionSettings()
    configure_logging("interaction", settings.log_level, settings.log_format)
    store, secret = _store(settings), settings.tracking_secret.get_secret_value()
    dispatcher = Dispatcher(settings, store, ReliableProducer(settings.kafka_client_config()))
    sources = [(str(f), f.read_bytes()) for f in files] if files else [("stdin", sys.stdin.buffer.read())]
    for name, raw in sources:
        token = token_of_mail(email.message_from_bytes(raw, policy=email_policy.default))
        try:
            customer_id = verify_unsubscribe(token or "", secret).customer_id
        except InvalidUnsubscribeToken:
            typer.echo(f"{name}: ignored, no valid unsubscribe token in the subject", err=True)
            continue
        if store.write(customer_store.unsubscribe, customer_id, "unsubscribe-mail", datetime.now(UTC)):
            dispatcher.report(CatalogEvent.UNSUBSCRIBED, customer_id, f"ecrm-interaction-unsubscribe-{customer_id}",
                              {"list_id": "marketing"})  # fmt: skip
        typer.echo(f"{name}: unsubscribed")


@tokens_cli.command("add")
def tokens_add(
    name: str, role: Annotated[str, typer.Option(help="viewer, agent, marketer or admin")] = "viewer"
) -> None:
    """Create a token and print it (once: only its hash is kept)."""
    try:
        token = _store(InteractionSettings()).write(tokens.add_token, name, role, "cli")
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(token)


@tokens_cli.command("list")
def tokens_list() -> None:
    for token in _store(InteractionSettings()).read(tokens.tokens):
        state = f"revoked {token.revoked_at:%Y-%m-%d}" if token.revoked_at else "active"
        typer.echo(f"{token.name}\t{token.role}\t{state}")


@tokens_cli.command("revoke")
def tokens_revoke(name: str) -> None:
    if not _store(InteractionSettings()).write(tokens.revoke_token, name, "cli"):
        raise typer.BadParameter(f"no active token {name!r}")
    typer.echo(f"revoked {name}")


@users_cli.command("add")
def users_add(
    email: str,
    role: Annotated[str, typer.Option(help="viewer, agent, marketer or admin")] = "viewer",
    name: Annotated[str, typer.Option(help="How the console shows them (default: the email).")] = "",
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
    update: Annotated[bool, typer.Option("--update", help="An existing user gets this role and password.")] = False,
) -> None:
    """Create a console user (the first admin: ``--role admin``); the password is asked for unless piped."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if (problem := users.password_problem(password)) is not None:
        raise typer.BadParameter(f"the password {problem}", param_hint="password")
    store = _store(InteractionSettings())

    def add_or_update(session: Session) -> str:
        existing = users.user_by_email(session, email)
        if existing is None:
            users.add_user(session, email, name, role, password, "cli")
            return "created"
        if not update:
            raise typer.BadParameter(f"a user {email!r} exists (--update changes their role and password)")
        users.update_user(session, existing, "cli", role=role, disabled=False)
        users.set_password(session, existing, password, "cli")
        return "updated"

    try:
        done = store.write(add_or_update)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"{done} {users.normalise_email(email)} ({role})")


@users_cli.command("list")
def users_list() -> None:
    for user in _store(InteractionSettings()).read(users.users):
        state = f"disabled {user.disabled_at:%Y-%m-%d}" if user.disabled_at else "active"
        typer.echo(f"{user.email}\t{user.role}\t{state}")


@suppressions_cli.command("list")
def suppressions_list(limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100) -> None:
    """The suppressed addresses (by digest: the addresses themselves are not kept)."""
    for row in _store(InteractionSettings()).read(suppression_store.listed, limit):
        typer.echo(f"{row.address_digest}\t{row.reason}\t{row.suppressed_at:%Y-%m-%dT%H:%M:%SZ}\t{row.source}")


@suppressions_cli.command("lift")
def suppressions_lift(
    address: Annotated[str, typer.Argument(help="The address (or its digest, as `list` shows it).")],
    reason: Annotated[str, typer.Option("--reason", help="Why it may be mailed again (audited).")],
) -> None:
    """Let a suppressed address be mailed again; the audit log keeps who (``cli``) and why."""
    from datetime import UTC, datetime

    from ecrm_interaction.engine.contact_policy import address_digest

    digest = address if len(address) == 64 and "@" not in address else address_digest(address)
    if len(reason.strip()) < 3:
        raise typer.BadParameter("give a reason of at least 3 characters", param_hint="--reason")
    if (
        _store(InteractionSettings()).write(suppression_store.lift, digest, "cli", reason.strip(), datetime.now(UTC))
        is None
    ):
        raise typer.BadParameter("this address is not suppressed", param_hint="ADDRESS")
    typer.echo(f"lifted {digest}")


@privacy_cli.command("export")
def privacy_export(
    customer: Annotated[str, typer.Argument(help="A user id or an anonymous id of the customer.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the JSON here (default: stdout).")
    ] = None,
) -> None:
    """Print everything stored about a customer, from ClickHouse and the relational store, as JSON."""
    document = _privacy_from_environment().export(customer)
    if document is None:
        typer.echo("no data stored for this customer", err=True)
        raise typer.Exit(1)
    text = orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text + "\n")


@privacy_cli.command("erase")
def privacy_erase(
    customer: Annotated[str, typer.Argument(help="A user id or an anonymous id of the customer.")],
    yes: Annotated[bool, typer.Option("--yes", help="Erase without asking.")] = False,
) -> None:
    """Erase a customer everywhere and suppress their ids; prints what was removed and what is left."""
    if not yes:
        typer.confirm("Erase every row about this customer, for good?", abort=True)
    report = _privacy_from_environment().erase(customer, "cli")
    typer.echo(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode())
    if any(report.remaining.values()):
        raise typer.Exit(1)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
