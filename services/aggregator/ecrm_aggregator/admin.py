"""``ecrm``: the operator's command line for the data the aggregator keeps.

    ecrm migrate [--print]                 apply (or print) the ClickHouse migrations
    ecrm identity show ID                  an id's link and its merge log
    ecrm identity unmerge ANONYMOUS_ID     preview undoing a merge; --apply to do it
    ecrm segments put FILE.json            publish a segment definition (new or changed), once it validates
    ecrm segments list                     the definitions in force (the definitions topic)
    ecrm segments show ID                  one definition, as JSON
    ecrm segments delete ID                delete a segment (its members leave it)
    ecrm segments members ID               who is in a segment now
    ecrm topics create                     create the registry's topics that are missing
    ecrm topics manifest --cluster NAME    the topics as Strimzi KafkaTopic resources (YAML)

Settings come from the environment, as for the services (``CLICKHOUSE_URL`` …).
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
import yaml

from ecrm_aggregator.clickhouse_store import ClickHouseStore, connect
from ecrm_aggregator.identity_admin import UnmergeRefused, apply_unmerge, plan_unmerge
from ecrm_aggregator.migrate import all_statements, apply_events_retention, migrate
from ecrm_aggregator.segment_follower import SegmentFollower, definition_problems
from ecrm_aggregator.segmentation import SegmentRegistry
from ecrm_aggregator.settings import AggregatorSettings
from ecrm_schemas.kafka_admin import ensure_topics, strimzi_topics
from ecrm_schemas.kafka_producer import ReliableProducer
from ecrm_schemas.logs import configure_logging
from ecrm_schemas.segments import SegmentDefinition, explain
from ecrm_schemas.topics import SEGMENT_DEFINITIONS

cli = typer.Typer(add_completion=False, help="Operate the eCRM's ClickHouse data.", no_args_is_help=True)
identity_cli = typer.Typer(help="Identity stitching: inspect and undo merges.", no_args_is_help=True)
cli.add_typer(identity_cli, name="identity")
segments_cli = typer.Typer(help="Segment definitions and membership.", no_args_is_help=True)
cli.add_typer(segments_cli, name="segments")
topics_cli = typer.Typer(help="The Kafka topics of the registry.", no_args_is_help=True)
cli.add_typer(topics_cli, name="topics")


@topics_cli.command("create")
def topics_create(
    replication_factor: Annotated[int, typer.Option(help="Replicas of each new topic.")] = 1,
) -> None:
    """Create the topics of the registry that do not exist yet (existing ones are left alone)."""
    settings = _settings()
    created = ensure_topics(settings.kafka_client_config(), replication_factor=replication_factor)
    typer.echo(f"created {len(created)} topics: {', '.join(created) or 'none missing'}")


@topics_cli.command("manifest")
def topics_manifest(
    cluster: Annotated[str, typer.Option(help="The Strimzi Kafka cluster (the strimzi.io/cluster label).")] = "ecrm",
    replicas: Annotated[int, typer.Option(help="Replicas of each topic.")] = 3,
) -> None:
    """Print the registry's topics as Strimzi KafkaTopic resources."""
    typer.echo(yaml.safe_dump_all(strimzi_topics(cluster, replicas), sort_keys=False), nl=False)


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


@segments_cli.command("put")
def segments_put(path: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Publish the definition in PATH (JSON) on the segment-definitions topic.

    It is validated first, as the interaction API and the aggregators do: a definition naming a
    field the profile does not have (or a value not of its kind) is refused, with each field and rule.
    """
    settings = _settings()
    definition, errors = definition_problems(path.read_bytes())
    if definition is None:
        typer.echo("invalid definition:", err=True)
        for error in errors:
            typer.echo(f"  {error.field}: {error.message} [{error.rule}]", err=True)
        raise typer.Exit(2)
    producer = ReliableProducer(settings.kafka_client_config())
    producer.produce(SEGMENT_DEFINITIONS.name, definition.encode(), key=definition.id.encode())
    producer.flush_or_raise(30)
    typer.echo(f"published {definition.id!r}: {explain(definition.condition)}")


def _definitions(settings: AggregatorSettings) -> list[SegmentDefinition]:
    """The definitions in force: the compacted topic read to its end."""
    registry = SegmentRegistry()
    follower = SegmentFollower(settings.kafka_client_config(), registry)
    follower.start()
    try:
        if not follower.caught_up.wait(30):
            typer.echo("the segment-definitions topic could not be read in 30 s", err=True)
            raise typer.Exit(1)
    finally:
        follower.stop()
        follower.join(10)
    return registry.current()


@segments_cli.command("list")
def segments_list() -> None:
    """Every segment definition in force: id, name and condition in words."""
    for definition in _definitions(_settings()):
        typer.echo(f"{definition.id}\t{definition.name}\t{explain(definition.condition)}")


@segments_cli.command("show")
def segments_show(segment_id: str) -> None:
    """SEGMENT_ID's definition, as JSON (what ``put`` takes)."""
    found = [d for d in _definitions(_settings()) if d.id == segment_id]
    if not found:
        typer.echo(f"no segment {segment_id!r}", err=True)
        raise typer.Exit(1)
    typer.echo(found[0].model_dump_json(indent=2))


@segments_cli.command("delete")
def segments_delete(segment_id: str) -> None:
    """Delete SEGMENT_ID (a tombstone on the compacted topic); its members leave it at the next tick."""
    settings = _settings()
    producer = ReliableProducer(settings.kafka_client_config())
    producer.produce(SEGMENT_DEFINITIONS.name, b"", key=segment_id.encode())
    producer.flush_or_raise(30)
    typer.echo(f"deleted {segment_id!r}")


@segments_cli.command("members")
def segments_members(segment_id: str, limit: int = typer.Option(100, min=1)) -> None:
    """The customers in SEGMENT_ID now, newest members first."""
    settings = _settings()
    client = connect(settings)
    rows = client.query(
        f"SELECT customer_id, member_since FROM {settings.clickhouse_database}.segment_members "
        "WHERE segment_id = {id:String} ORDER BY member_since DESC LIMIT {limit:UInt32}",
        parameters={"id": segment_id, "limit": limit},
    ).result_rows
    for customer_id, since in rows:
        typer.echo(f"{customer_id}\t{since:%Y-%m-%d %H:%M:%S}")


def main() -> None:
    cli()
