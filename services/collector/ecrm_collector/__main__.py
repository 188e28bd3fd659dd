"""``ecrm-collector``: start the collector's HTTP server."""

from __future__ import annotations

import typer
import uvicorn

from ecrm_collector.app import create_app
from ecrm_collector.producer import AsyncProducer
from ecrm_collector.settings import CollectorSettings
from ecrm_schemas.logs import configure_logging

cli = typer.Typer(
    add_completion=False, help="The eCRM collector (Segment-compatible ingest API).", no_args_is_help=True
)


@cli.callback()
def _commands() -> None:
    """Subcommands always need their name (`ecrm-collector serve`)."""


@cli.command()
def serve() -> None:
    """Serve the ingest API; settings come from the environment (see the README)."""
    settings = CollectorSettings()
    configure_logging("collector", settings.log_level, settings.log_format)
    producer = AsyncProducer({**settings.kafka_client_config(), "linger.ms": settings.collector_linger_ms})
    app = create_app(settings, producer)
    try:
        uvicorn.run(
            app,
            host=settings.collector_host,
            port=settings.collector_port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    finally:
        producer.close()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
