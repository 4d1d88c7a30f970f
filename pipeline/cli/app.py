"""``newspipe``: the one command line. Imports are inside commands so ``--help`` is instant."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import typer
from rich.table import Table

from pipeline.cli.output import console, print_alert, print_search, run_search

app = typer.Typer(
    help="Streaming news ingestion: Kafka -> Faust -> spaCy -> Elasticsearch, with alerts.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
alerts_app = typer.Typer(
    help="Alert subscriptions: add, list, remove, history, tail.", no_args_is_help=True
)
app.add_typer(alerts_app, name="alerts")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        console.print(f"newspipe {version('newspipe')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Streaming news ingestion: Kafka -> Faust -> spaCy -> Elasticsearch, with alerts."""


def _settings():
    from pipeline.settings import get_settings

    return get_settings()


def _pipeline():
    from pipeline.stream.process import Pipeline

    return Pipeline(_settings())


# --- local runtime -----------------------------------------------------------------------------
from pipeline.runtime.cli import cmd_down, cmd_status, cmd_up  # noqa: E402

app.command("up", help="Start a local Kafka broker and Elasticsearch node (no Docker needed).")(
    cmd_up
)
app.command("down", help="Stop what `newspipe up` started.")(cmd_down)
app.command("status", help="Show what the local runtime runs, where.")(cmd_status)


@app.command("setup")
def cmd_setup(
    kibana_url: str | None = typer.Option(None, help="also import Kibana saved objects"),
) -> None:
    """Create topics, index templates and aliases (idempotent; any cluster)."""
    from pipeline.infra.setup import setup

    done = setup(_settings(), kibana_url=kibana_url)
    for what, names in done.items():
        console.print(f"{what}: {', '.join(names) if names else 'already there'}")


@app.command("kibana-setup")
def cmd_kibana_setup(
    kibana_url: str | None = typer.Option(None, help="Kibana URL (default NEWS_KIBANA_URL)"),
) -> None:
    """Import the Kibana saved objects (data views, searches, dashboard); idempotent."""
    from pipeline.infra.kibana import KibanaError
    from pipeline.infra.kibana import cmd_kibana_setup as kibana_setup

    try:
        kibana_setup(kibana_url or _settings().kibana_url)
    except KibanaError as exc:
        console.print(f"[red]Kibana setup failed:[/] {exc}")
        raise typer.Exit(1) from None


@app.command("setup-model")
def cmd_setup_model() -> None:
    """Install the configured spaCy models (NEWS_SPACY_MODEL, NEWS_SPACY_MODELS) when missing."""
    from pipeline.stages.nlp import ModelNotInstalledError, ensure_model

    try:
        console.print(
            f"spaCy model ready: {ensure_model(_settings().spacy_model, report=console.print)}"
        )
        for language, model in sorted(_settings().spacy_models.items()):
            console.print(
                f"spaCy model for {language!r} ready: {ensure_model(model, report=console.print)}"
            )
    except ModelNotInstalledError as exc:
        console.print(f"[red]spaCy model not installed:[/] {exc}")
        raise typer.Exit(1) from None


@app.command("worker")
def cmd_worker(loglevel: str = typer.Option("info", "--loglevel", "-l")) -> None:
    """Run a Faust worker (run more of them to scale out; partitions decide)."""
    from pipeline.stream.worker import run_worker

    run_worker(loglevel=loglevel)


from pipeline.sources.ingest import cmd_ingest  # noqa: E402

app.command("ingest", help="Send articles (files, .json/.jsonl, directories, feeds) to Kafka.")(
    cmd_ingest
)


@app.command("backfill")
def cmd_backfill(
    paths: list[Path] = typer.Argument(..., help="files or directories, as for `ingest`"),
    reprocess: bool = typer.Option(
        False, help="re-enrich articles already indexed under the same id (after a model change)"
    ),
) -> None:
    """Run inputs through the pipeline in this process (no Kafka) into Elasticsearch."""
    from pipeline.stream.backfill import backfill

    report = backfill(_pipeline(), paths, reprocess=reprocess)
    console.print(report.summary())


@app.command("search")
def cmd_search(
    query: str = typer.Argument(
        "", help='alert query syntax: words, "phrases", AND/OR/NOT, fields'
    ),
    entity: list[str] = typer.Option([], "--entity", help="only articles with this entity"),
    event: list[str] = typer.Option([], "--event", help="only articles with this event type"),
    since: datetime | None = typer.Option(None, help="only articles since (ISO date/time)"),
    size: int = typer.Option(10, help="how many hits"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Search indexed articles: best hits with highlighted snippets, and facet counts."""
    from pipeline.query.language import QuerySyntaxError

    pipeline = _pipeline()
    try:
        result = run_search(pipeline, query, entity, event, since, size)
    except QuerySyntaxError as exc:
        _query_error(query, exc)
    if as_json:
        from dataclasses import asdict

        console.print_json(json.dumps(asdict(result)))
        return
    print_search(result, query)


def _query_error(query: str, exc) -> None:
    from pipeline.query.language import caret

    console.print(f"[red]invalid query:[/] {exc}")
    console.print(caret(query, exc.position))
    raise typer.Exit(2)


# --- alerts --------------------------------------------------------------------------------------
def _store(pipeline):
    from pipeline.alerts.subscriptions import SubscriptionStore

    return SubscriptionStore(pipeline.settings, pipeline.es)


@alerts_app.command("add")
def cmd_alerts_add(
    query: str = typer.Argument(
        ..., help='e.g. memorandum, "prisoner exchange", entity:"Vladimir Medinsky"'
    ),
    owner: str = typer.Option("default", help="who the subscription belongs to"),
    webhook: list[str] = typer.Option([], "--webhook", help="also POST alerts to this URL"),
    backfill: bool = typer.Option(False, help="also report already-indexed articles that match"),
    digest: str = typer.Option(
        "as_it_happens", help="webhooks get: as_it_happens, hourly or daily"
    ),
    timezone: str | None = typer.Option(
        None, help="IANA time zone of digest periods (default UTC)"
    ),
    per_story: bool = typer.Option(
        False, "--per-story", help="alert once per story; later articles are added to it as updates"
    ),
) -> None:
    """Subscribe to a query."""
    from pipeline.alerts.subscriptions import SubscriptionRejected
    from pipeline.query.language import QuerySyntaxError

    pipeline = _pipeline()
    store = _store(pipeline)
    try:
        created = store.create(
            query,
            owner=owner,
            webhooks=webhook,
            digest=digest,
            timezone=timezone,
            per_story=per_story,
        )
    except QuerySyntaxError as exc:
        _query_error(query, exc)
    except SubscriptionRejected as exc:
        console.print(f"[red]subscription refused:[/] {exc}")
        raise typer.Exit(2) from None
    subscription = created.subscription
    console.print(f"subscribed [bold]{subscription.id}[/] to [cyan]{subscription.query}[/]")
    for channel in subscription.webhooks:  # the only time a secret is shown
        console.print(
            f"webhook {channel.id} ({channel.target}) signing secret: {created.webhook_secrets[channel.id]}",
            markup=False,
            highlight=False,
        )
    if backfill:
        from pipeline.alerts.backfill import backfill_alerts

        fired = backfill_alerts(pipeline, subscription)
        console.print(f"backfill: {len(fired)} already-indexed article(s) match")
        for alert in fired:
            print_alert(alert)
    store.close()


@alerts_app.command("list")
def cmd_alerts_list(owner: str | None = typer.Option(None)) -> None:
    """List subscriptions."""
    table = Table("id", "owner", "query", "channels", "created")
    for s in _store(_pipeline()).list(owner=owner):
        hooks = [
            f"{c.id} {c.target}" + (f" DISABLED: {c.disabled}" if c.disabled else "")
            for c in s.webhooks
        ]
        if s.digest != "as_it_happens":
            hooks.append(f"digest: {s.digest} ({s.timezone or 'UTC'})")
        table.add_row(
            s.id,
            s.owner,
            s.query,
            ", ".join(s.channels + hooks),
            s.created_at.isoformat(timespec="seconds"),
        )
    console.print(table)


@alerts_app.command("remove")
def cmd_alerts_remove(subscription_id: str) -> None:
    """Remove a subscription."""
    store = _store(_pipeline())
    if not store.remove(subscription_id):
        console.print(f"[yellow]no subscription {subscription_id}[/]")
        raise typer.Exit(1)
    console.print(f"removed {subscription_id}")
    store.close()


@alerts_app.command("history")
def cmd_alerts_history(
    subscription_id: str | None = typer.Argument(None), size: int = typer.Option(20)
) -> None:
    """The latest alerts (of one subscription), with each webhook delivery's state."""
    from pipeline.alerts.outbox import describe

    for alert in _pipeline().ledger.history(subscription_id, size=size):
        print_alert(alert)
        for status in alert.deliveries:
            console.print(f"   webhook {describe(status)}", markup=False, highlight=False)


@alerts_app.command("tail")
def cmd_alerts_tail(
    from_beginning: bool = typer.Option(False, help="also print the alerts already sent"),
) -> None:
    """Print alerts live as they fire (Ctrl-C to stop)."""
    from pipeline.infra.kafka import make_consumer
    from schemas import Alert

    settings = _settings()
    consumer = make_consumer(
        settings.topic("alerts"),
        settings=settings,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    try:
        for record in consumer:
            print_alert(Alert.model_validate_json(record.value))
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


@app.command("api")
def cmd_api(host: str | None = None, port: int | None = None) -> None:
    """Serve the HTTP API and the web page at / (docs/api.md; OpenAPI at /docs; bearer token
    NEWS_API_TOKEN, generated into the data directory when unset; binds 127.0.0.1 unless --host)."""
    import uvicorn

    settings = _settings()
    uvicorn.run(
        "pipeline.api:create_api",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
    )


@app.command("demo")
def cmd_demo(
    seeds: Path = typer.Option(Path("seeds"), help="articles to ingest"),
    query: str = typer.Option("memorandum", help="the subscription and the search"),
    keep_worker: bool = typer.Option(False, help="leave the worker running"),
) -> None:
    """The main job: local servers, a worker, subscribe, ingest the seeds, search, alerts."""
    from pipeline.cli.demo import run_demo

    raise typer.Exit(run_demo(seeds=seeds, query=query, keep_worker=keep_worker))


deadletters_app = typer.Typer(
    help="Dead letters: list them (no subcommand), replay them.", invoke_without_command=True
)
app.add_typer(deadletters_app, name="deadletters")


@deadletters_app.callback()
def cmd_deadletters(
    ctx: typer.Context, limit: int = typer.Option(20, help="how many, newest last")
) -> None:
    """Show the messages that failed, with the stage and the error."""
    if ctx.invoked_subcommand is not None:
        return
    from pipeline.infra.kafka import make_consumer
    from schemas import DeadLetter

    settings = _settings()
    consumer = make_consumer(
        settings.topic("deadletter"), settings=settings, consumer_timeout_ms=3000
    )
    letters = [DeadLetter.model_validate_json(r.value) for r in consumer]
    consumer.close()
    for letter in letters[-limit:]:
        where = f"{letter.topic}[{letter.partition}]@{letter.offset}" if letter.topic else "ingest"
        console.print(
            f"[red]{letter.stage}[/] {letter.error_type}: {letter.error} [dim]({where}, {len(letter.payload)} chars)[/]"
        )
    console.print(f"{len(letters)} dead letter(s)")


# --- operations: retention, migrate, replay (pipeline/ops, docs/operations.md) -------------------
from pipeline.ops.cli import cmd_migrate, cmd_replay, keys_app, retention_app  # noqa: E402

app.add_typer(retention_app, name="retention")
app.add_typer(keys_app, name="keys")
app.command("migrate", help="Apply mapping changes that need a new index (copy, swap the alias).")(
    cmd_migrate
)
deadletters_app.command(
    "replay", help="Send dead letters back through the pipeline (dry run without --yes)."
)(cmd_replay)


if __name__ == "__main__":
    app()
