"""``ecrm-interaction``: migrate the database, load rules, serve the API, consume and dispatch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from ecrm_interaction.app import create_app
from ecrm_interaction.dispatch import Dispatcher
from ecrm_interaction.recommendations import clickhouse_services
from ecrm_interaction.rules_file import load_rules_file
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.store import Store, make_engine, migrate
from ecrm_interaction.worker import InteractionWorker
from ecrm_schemas.logs import configure_logging

cli = typer.Typer(add_completion=False, help="The eCRM interaction service.", no_args_is_help=True)
tokens_cli = typer.Typer(add_completion=False, help="REST API tokens.", no_args_is_help=True)
cli.add_typer(tokens_cli, name="tokens")


def _store(settings: InteractionSettings) -> Store:
    engine = make_engine(settings.database_url)
    migrate(engine)
    return Store(engine)


def _load(store: Store, path: Path, actor: str) -> tuple[int, int]:
    rules = load_rules_file(path)
    store.upsert_rules(rules.templates, rules.rules, actor)
    if rules.loyalty is not None:
        store.set_loyalty_program(rules.loyalty, actor)
    return len(rules.templates), len(rules.rules)


@cli.command()
def serve() -> None:
    """Apply migrations, load the rules file if set, then consume, dispatch and serve the API."""
    settings = InteractionSettings()
    configure_logging("interaction", settings.log_level, settings.log_format)
    store = _store(settings)
    if settings.interaction_rules_file is not None:
        _load(store, settings.interaction_rules_file, "rules-file")
    worker = InteractionWorker(settings, store)
    recommender, recent_events, refresher = clickhouse_services(settings)
    dispatcher = Dispatcher(settings, store, worker.producer, recommender, refresher)
    app = create_app(settings, store, worker, dispatcher, recommender, recent_events)
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
    templates, rules = _load(_store(InteractionSettings()), path, "cli")
    typer.echo(f"loaded {templates} templates and {rules} rules")


@tokens_cli.command("add")
def tokens_add(name: str, role: Annotated[str, typer.Option(help="viewer, marketer or admin")] = "viewer") -> None:
    """Create a token and print it (once: only its hash is kept)."""
    try:
        token = _store(InteractionSettings()).add_token(name, role, "cli")
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(token)


@tokens_cli.command("list")
def tokens_list() -> None:
    for token in _store(InteractionSettings()).tokens():
        state = f"revoked {token.revoked_at:%Y-%m-%d}" if token.revoked_at else "active"
        typer.echo(f"{token.name}\t{token.role}\t{state}")


@tokens_cli.command("revoke")
def tokens_revoke(name: str) -> None:
    if not _store(InteractionSettings()).revoke_token(name, "cli"):
        raise typer.BadParameter(f"no active token {name!r}")
    typer.echo(f"revoked {name}")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
