"""``ecrm-aggregator``: apply ClickHouse migrations, then run the faust worker."""

from __future__ import annotations

import structlog
import typer
from faust.worker import Worker
from prometheus_client import start_http_server
from tenacity import retry, stop_after_delay, wait_fixed

from ecrm_aggregator.admin import migrate_command, prepare_clickhouse
from ecrm_aggregator.batch_writer import BatchWriter
from ecrm_aggregator.clickhouse_store import ClickHouseStore, connect
from ecrm_aggregator.consumer import BatchConsumer
from ecrm_aggregator.item_similarity import SimilarityRefresher
from ecrm_aggregator.segment_follower import SegmentFollower
from ecrm_aggregator.segmentation import SegmentRegistry
from ecrm_aggregator.settings import AggregatorSettings
from ecrm_aggregator.worker import build_app, kafka_producer
from ecrm_schemas.logs import configure_logging
from ecrm_schemas.runtime import settle_garbage_collector
from ecrm_schemas.suppressions import follow_suppressions

log = structlog.get_logger()
cli = typer.Typer(add_completion=False, help="The eCRM aggregator.", no_args_is_help=True)


@retry(stop=stop_after_delay(120), wait=wait_fixed(1), reraise=True)
def _connect_and_migrate(settings: AggregatorSettings) -> ClickHouseStore:
    store, _ = prepare_clickhouse(settings)
    return store


cli.command("migrate", help="Apply the pending ClickHouse migrations (the same as `ecrm migrate`).")(migrate_command)


@cli.command()
def serve() -> None:
    """Wait for ClickHouse, migrate, serve metrics, and consume events until stopped."""
    settings = AggregatorSettings()
    configure_logging("aggregator", settings.log_level, settings.log_format)
    store = _connect_and_migrate(settings)
    start_http_server(settings.aggregator_metrics_port, addr=settings.aggregator_metrics_host)
    # Its own client: the refresh's long query runs beside the batches' inserts.
    SimilarityRefresher(
        connect(settings), settings.clickhouse_database, settings.aggregator_similarity_refresh_s
    ).start()
    segments = SegmentRegistry()
    # Its own producer: the follower's thread dead-letters refused definitions while batches flush theirs.
    SegmentFollower(settings.kafka_client_config(), segments, kafka_producer(settings)).start()
    suppressions, follower = follow_suppressions(settings.kafka_client_config())
    if not follower.caught_up.wait(60):
        log.warning("suppression_list_not_read_yet")
    writer = BatchWriter(
        store, kafka_producer(settings), settings.aggregator_max_invalid_ratio, segments,
        settings.aggregator_traits_refresh_s, suppressions, settings.aggregator_profile_cache_size,
    )  # fmt: skip
    if settings.aggregator_engine == "faust":
        app = build_app(settings, writer)
        worker = Worker(app, loglevel=settings.log_level, redirect_stdouts=False, quiet=True)
        settle_garbage_collector()
        worker.execute_from_commandline()
    else:
        consumer = BatchConsumer(settings, writer)
        settle_garbage_collector()
        consumer.run()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
