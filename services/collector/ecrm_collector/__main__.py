"""``ecrm-collector``: start the collector's HTTP server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from fastapi import FastAPI

from ecrm_collector.app import create_app
from ecrm_collector.producer import AsyncProducer
from ecrm_collector.settings import CollectorSettings
from ecrm_collector.sources import SourceError, SourceRegistry, editing
from ecrm_schemas.logs import configure_logging
from ecrm_schemas.runtime import settle_garbage_collector
from ecrm_schemas.suppressions import follow_suppressions

cli = typer.Typer(
    add_completion=False, help="The eCRM collector (Segment-compatible ingest API).", no_args_is_help=True
)


@cli.callback()
def _commands() -> None:
    """Subcommands always need their name (`ecrm-collector serve`)."""


@cli.command()
def serve() -> None:
    """Serve the ingest API; settings come from the environment (see the README).

    With ``COLLECTOR_WORKERS`` > 1 uvicorn runs that many processes on the port, each with
    its own producer (:func:`app_from_environment`).
    """
    settings = CollectorSettings()
    configure_logging("collector", settings.log_level, settings.log_format)
    uvicorn.run(
        "ecrm_collector.__main__:app_from_environment",
        factory=True,
        host=settings.collector_host,
        port=settings.collector_port,
        workers=settings.collector_workers,
        log_config=None,
        access_log=False,  # tracking URLs carry tokens
        timeout_graceful_shutdown=10,
    )


def app_from_environment() -> FastAPI:
    """The app of one server process: settings, logging and a producer of its own, closed
    (flushed) after uvicorn's graceful shutdown has let in-flight requests finish."""
    settings = CollectorSettings()
    configure_logging("collector", settings.log_level, settings.log_format)
    producer = AsyncProducer(
        {
            **settings.kafka_client_config(),
            "linger.ms": settings.collector_linger_ms,
            # A record not acknowledged when the request gives up (503) is dropped, not sent later.
            "message.timeout.ms": int(settings.collector_produce_timeout_s * 1000),
        }
    )
    _, follower = follow_suppressions(settings.kafka_client_config())
    app = create_app(settings, producer, close_producer_at_shutdown=True, suppressions=follower)
    settle_garbage_collector()
    return app


sources_cli = typer.Typer(add_completion=False, help="Manage sources and their write keys.", no_args_is_help=True)
cli.add_typer(sources_cli, name="sources")


def _sources_file(file: Path | None) -> Path:
    path = file or CollectorSettings().collector_sources_file
    if path is None:
        raise typer.BadParameter(
            "set COLLECTOR_SOURCES_FILE (the file the collector reads) or pass --file", param_hint="--file"
        )
    return path


FileOption = Annotated[
    Path | None,
    typer.Option(
        "--file",
        help="Registry file (default: COLLECTOR_SOURCES_FILE; in development the dev stack's "
        "ECRM_DATA_DIR/sources.json, i.e. .ecrm/sources.json).",
    ),
]


@sources_cli.command("add")
def sources_add(
    name: str,
    kind: Annotated[str, typer.Option(help="browser (public key, CORS origins) or server (secret key)")] = "server",
    origin: Annotated[
        list[str] | None, typer.Option(help="An origin a browser source may send from; repeatable.")
    ] = None,
    file: FileOption = None,
) -> None:
    """Create a source and print its write key (shown this once; only its hash is stored)."""
    if kind not in ("browser", "server"):
        raise typer.BadParameter("kind must be browser or server")
    path = _sources_file(file)
    try:
        with editing(path) as registry:
            _source, key = registry.add(name, kind, tuple(origin or ()))  # type: ignore[arg-type]
    except SourceError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"source {name} ({kind}) added to {path}; its write key (shown once):", err=True)
    typer.echo(key)


@sources_cli.command("list")
def sources_list(file: FileOption = None) -> None:
    """List sources (never their keys)."""
    for source in SourceRegistry.load(_sources_file(file)).sources.values():
        state = "revoked" if source.revoked else "active"
        typer.echo(f"{source.name}\t{source.kind}\t{state}\t{','.join(source.allowed_origins) or '-'}")


@sources_cli.command("revoke")
def sources_revoke(name: str, file: FileOption = None) -> None:
    """Revoke a source's write key; the collector refuses it within a second."""
    path = _sources_file(file)
    try:
        with editing(path) as registry:
            registry.revoke(name)
    except SourceError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"revoked {name}")


@cli.command()
def loadgen(
    url: Annotated[str, typer.Option(help="The collector's base URL.")] = "http://127.0.0.1:8080",
    key: Annotated[
        str | None, typer.Option(help="A server write key (default: the first of COLLECTOR_WRITE_KEYS).")
    ] = None,
    rate: Annotated[float, typer.Option(help="Events per second offered.")] = 500.0,
    seconds: Annotated[float, typer.Option(help="How long.")] = 60.0,
    customers: Annotated[int, typer.Option(help="Distinct customers.")] = 10_000,
) -> None:
    """Offer a shop's traffic at a fixed rate (smoke and load tests of a deployment)."""
    import asyncio

    from ecrm_collector.loadgen import offer

    write_key = key or sorted(CollectorSettings().write_keys())[0]
    outcome = asyncio.run(offer(url, write_key, rate, seconds, customers))
    typer.echo(" ".join(f"{k}={v}" for k, v in sorted(outcome.items())))


links_cli = typer.Typer(
    add_completion=False, help="Tracking links for mail sent by another tool.", no_args_is_help=True
)
cli.add_typer(links_cli, name="links")


@links_cli.command("sign")
def links_sign(
    url: Annotated[list[str], typer.Option("--url", help="A link of the message (http or https); repeatable.")],
    user_id: Annotated[str | None, typer.Option("--user-id", help="The recipient's userId.")] = None,
    anonymous_id: Annotated[
        str | None, typer.Option("--anonymous-id", help="The recipient's anonymousId (when no userId is known).")
    ] = None,
    campaign: Annotated[
        str | None, typer.Option("--campaign", help="The campaign id, carried as campaign_id in the events.")
    ] = None,
    email_id: Annotated[
        str | None, typer.Option("--email-id", help="The message's id (default: a new one, printed).")
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="The collector as recipients reach it (default: COLLECTOR_PUBLIC_URL)."),
    ] = None,
) -> None:
    """Print signed tracking URLs for one recipient's message: a click URL per link (it records
    ``Email Link Clicked`` and redirects there) and the open pixel (``Email Opened``), signed with
    TRACKING_SECRET as the interaction service signs its own mail's links.

    Output, tab-separated: ``email_id ID``, then ``click SIGNED_URL TARGET`` per link, then ``open PIXEL_URL``.
    """
    import uuid

    from ecrm_schemas.tracking import TrackingToken, sign, tracking_url

    if (user_id is None) == (anonymous_id is None):
        raise typer.BadParameter("give exactly one of --user-id and --anonymous-id", param_hint="--user-id")
    for target in url:
        if not target.startswith(("https://", "http://")):
            raise typer.BadParameter(f"{target!r} is not an http(s) URL", param_hint="--url")
    settings = CollectorSettings()
    base = base_url or settings.public_url()
    if base is None:
        raise typer.BadParameter("set COLLECTOR_PUBLIC_URL or pass --base-url", param_hint="--base-url")
    message_id = email_id or f"{campaign or 'external'}-{uuid.uuid4().hex[:16]}"
    claims = TrackingToken(
        email_id=message_id,
        customer=user_id or anonymous_id or "",
        customer_kind="userId" if user_id else "anonymousId",
        campaign_id=campaign,
    )
    secret = settings.tracking_secret.get_secret_value()
    typer.echo(f"email_id\t{message_id}")
    for target in url:
        signed = sign(claims.model_copy(update={"url": target}), secret)
        typer.echo(f"click\t{tracking_url(base, signed, click=True)}\t{target}")
    typer.echo(f"open\t{tracking_url(base, sign(claims, secret), click=False)}")


dlq_cli = typer.Typer(add_completion=False, help="The events' dead-letter topic.", no_args_is_help=True)
cli.add_typer(dlq_cli, name="dlq")


@dlq_cli.command("list")
def dlq_list(
    reason: Annotated[str | None, typer.Option(help="Only entries with this reason.")] = None,
    rule: Annotated[str | None, typer.Option(help="Only entries one of whose errors broke this rule.")] = None,
) -> None:
    """One line per entry: where it is, when and by whom it was refused, and the rules it broke
    (never the payload: it may hold personal data; ``dlq show`` prints one)."""
    from ecrm_collector.dead_letter_topic import read

    shown = 0
    for entry, _ in read(CollectorSettings().kafka_client_config()):
        letter = entry.letter
        if letter is None:
            typer.echo(f"{entry.partition}:{entry.offset}\t-\t-\tnot_a_dead_letter\t-")
            continue
        if (reason and letter.reason != reason) or (rule and all(e.rule != rule for e in letter.errors)):
            continue
        errors = ", ".join(f"{e.field}: {e.rule}" for e in letter.errors)
        typer.echo(f"{entry.partition}:{entry.offset}\t{letter.failed_at.isoformat()}\t{letter.source}\t"
                   f"{letter.reason}\t{errors}")  # fmt: skip
        shown += 1
    typer.echo(f"{shown} entries", err=True)


@dlq_cli.command("show")
def dlq_show(position: Annotated[str, typer.Argument(help="PARTITION:OFFSET, as `dlq list` prints it.")]) -> None:
    """The whole entry, payload included."""
    from ecrm_collector.dead_letter_topic import read

    try:
        partition, offset = (int(part) for part in position.split(":"))
    except ValueError:
        raise typer.BadParameter("give PARTITION:OFFSET, e.g. 0:17") from None
    for entry, message in read(CollectorSettings().kafka_client_config()):
        if (entry.partition, entry.offset) == (partition, offset):
            typer.echo(entry.letter.model_dump_json(indent=2) if entry.letter else (message.value() or b"").decode(
                errors="replace"))  # fmt: skip
            return
    raise typer.BadParameter(f"no entry at {position}")


@dlq_cli.command("replay")
def dlq_replay(
    apply: Annotated[
        bool, typer.Option("--apply", help="Produce and commit (without it: only say what would be).")
    ] = False,
    discard_invalid: Annotated[
        bool,
        typer.Option(
            "--discard-invalid",
            help="With --apply: mark entries that are still invalid as handled too (give up on them).",
        ),
    ] = False,
) -> None:
    """Validate the entries not replayed yet again and send those that pass now to ecrm.events
    (with their original message ids); entries that are still invalid stay pending for the next
    replay, and a browser key's server-only or contact-state events are never replayed."""
    from ecrm_collector.dead_letter_topic import replay

    if discard_invalid and not apply:
        raise typer.BadParameter("--discard-invalid needs --apply", param_hint="--discard-invalid")
    settings = CollectorSettings()
    plan, covered = replay(
        settings.kafka_client_config(), settings.collector_max_event_bytes, apply=apply, discard_invalid=discard_invalid
    )
    for letter, errors in plan.still_invalid:
        typer.echo(f"still invalid\t{letter.source}\t{', '.join(errors)}")
    verb = "replayed" if apply else "would replay"
    pending = "discarded" if discard_invalid else "pending"
    typer.echo(f"{covered} entries: {verb} {len(plan.records)}, still invalid {len(plan.still_invalid)} ({pending}), "
               f"never replayed {len(plan.refused)}, of erased customers {plan.suppressed}, "
               f"for other topics {len(plan.other_topic)}")  # fmt: skip


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
