"""``ecrm``: the operator's command line for the data the aggregator keeps.

    ecrm migrate [--print]                 apply (or print) the ClickHouse migrations
    ecrm identity show ID                  an id's link and its merge log
    ecrm identity unmerge ANONYMOUS_ID     preview undoing a merge; --apply to do it

Settings come from the environment, as for the services (``CLICKHOUSE_URL`` …).
"""

from __future__ import annotations

import getpass

import typer

from ecrm_aggregator.clickhouse_store import ClickHouseStore, connect
from ecrm_aggregator.identity_admin import UnmergeRefused, apply_unmerge, plan_unmerge
from ecrm_aggregator.migrate import all_statements, apply_events_retention, migrate
from ecrm_aggregator.settings import AggregatorSettings
from ecrm_schemas.kafka_producer import ReliableProducer
from ecrm_schemas.logs import configure_logging

cli = typer.Typer(add_completion=False, help="Operate the eCRM's ClickHouse data.", no_args_is_help=True)
identity_cli = typer.Typer(help="Identity stitching: inspect and undo merges.", no_args_is_help=True)
cli.add_typer(identity_cli, name="identity")


def _settings() -> AggregatorSettings:
    settings = AggregatorSettings()
    configure_logging("ecrm", settings.log_level, settings.log_format)
    return settings


def prepare_clickhouse(settings: AggregatorSettings) -> tuple[ClickHouseStore, list[int]]:
    """Apply pending migrations and the events retention; the store, and the versions applied."""
    client = connect(settings)
    applied = migrate(client, settings.clickhouse_database, settings.clickhouse_cluster)
    apply_events_retention(
        client, settings.clickhouse_database, settings.aggregator_events_retention_days, settings.clickhouse_cluster
    )
    return ClickHouseStore(client, settings.clickhouse_database), applied


@cli.command("migrate")
def migrate_command(
    print_only: bool = typer.Option(False, "--print", help="Print every statement from empty instead of applying."),
) -> None:
    """Apply the pending ClickHouse migrations to CLICKHOUSE_DATABASE (ON CLUSTER with CLICKHOUSE_CLUSTER)."""
    settings = _settings()
    if print_only:
        for statement in all_statements(settings.clickhouse_database, settings.clickhouse_cluster):
            typer.echo(statement + ";\n")
        return
    _, applied = prepare_clickhouse(settings)
    typer.echo(f"applied migrations: {applied or 'none (up to date)'}")


@identity_cli.command("show")
def identity_show(customer_id: str) -> None:
    """The merges, refusals and unmerges that involved CUSTOMER_ID."""
    settings = _settings()
    store = ClickHouseStore(connect(settings), settings.clickhouse_database)
    records = store.merge_log(customer_id)
    if not records:
        typer.echo(f"no merge involves {customer_id!r}")
    for r in records:
        why = f"  ({r.reason})" if r.reason else ""
        typer.echo(f"{r.at:%Y-%m-%d %H:%M:%S}  {r.action:<8}  {r.anonymous_id} -> {r.user_id}  "
                   f"by {r.actor}, event {r.message_id}{why}")  # fmt: skip


@identity_cli.command("unmerge")
def identity_unmerge(
    anonymous_id: str,
    reason: str = typer.Option(..., help="Why (kept in the merge log)."),
    actor: str = typer.Option(getpass.getuser, help="Who is undoing it (kept in the merge log)."),
    apply: bool = typer.Option(False, "--apply", help="Do it; without this, only show what would change."),
) -> None:
    """Undo ANONYMOUS_ID's merge: both profiles are recomputed from their events."""
    settings = _settings()
    store = ClickHouseStore(connect(settings), settings.clickhouse_database)
    try:
        plan = plan_unmerge(store, anonymous_id, actor, reason)
    except UnmergeRefused as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    for line in plan.summary():
        typer.echo(line)
    if not apply:
        typer.echo("preview only: run again with --apply to unmerge")
        return
    apply_unmerge(store, plan, ReliableProducer(settings.kafka_client_config()))
    typer.echo("unmerged; both profiles recomputed and their changes emitted")


def main() -> None:
    cli()
