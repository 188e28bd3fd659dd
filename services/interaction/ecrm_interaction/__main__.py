"""``ecrm-interaction``: migrate the database, load rules, serve the API and consume profile changes."""

from __future__ import annotations

from pathlib import Path

import typer
import uvicorn

from ecrm_interaction.app import create_app
from ecrm_interaction.rules_file import load_rules_file
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.store import Store, make_engine, migrate
from ecrm_interaction.worker import InteractionWorker
from ecrm_schemas.logs import configure_logging

cli = typer.Typer(add_completion=False, help="The eCRM interaction service.", no_args_is_help=True)


def _store(settings: InteractionSettings) -> Store:
    engine = make_engine(settings.database_url)
    migrate(engine)
    return Store(engine)


@cli.command()
def serve() -> None:
    """Apply migrations, load the rules file if set, then consume and serve the API."""
    settings = InteractionSettings()
    configure_logging("interaction", settings.log_level, settings.log_format)
    store = _store(settings)
    if settings.interaction_rules_file is not None:
        rules = load_rules_file(settings.interaction_rules_file)
        store.upsert_rules(rules.templates, rules.rules)
    app = create_app(settings, store, InteractionWorker(settings, store))
    uvicorn.run(app, host=settings.interaction_host, port=settings.interaction_port, log_config=None,
                access_log=False, timeout_graceful_shutdown=10)  # fmt: skip


@cli.command("migrate")
def migrate_command() -> None:
    """Apply the relational migrations to DATABASE_URL."""
    settings = InteractionSettings()
    configure_logging("interaction", settings.log_level, settings.log_format)
    _store(settings)


@cli.command("load-rules")
def load_rules(path: Path) -> None:
    """Create or update the rules and templates of a YAML file."""
    settings = InteractionSettings()
    rules = load_rules_file(path)
    _store(settings).upsert_rules(rules.templates, rules.rules)
    typer.echo(f"loaded {len(rules.templates)} templates and {len(rules.rules)} rules")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
