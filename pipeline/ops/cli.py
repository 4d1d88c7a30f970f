"""CLI commands of operations: ``retention``, ``migrate``, ``deadletters replay``, ``keys``.
Mounted on the main app by ``pipeline.cli``; imports are inside commands."""

from __future__ import annotations

from datetime import datetime

import typer
from rich.console import Console
from rich.table import Table

console = Console()

retention_app = typer.Typer(
    help="Retention: rollover, deletion of old indices and documents.", no_args_is_help=True
)


def _settings():
    from pipeline.settings import get_settings

    return get_settings()


def _es(settings):
    from pipeline.infra.es import make_client

    return make_client(settings)


@retention_app.command("run")
def cmd_retention_run(
    topics: bool = typer.Option(True, help="also set the duplicates/dead-letter topics' retention"),
) -> None:
    """One retention pass now (the worker runs one every NEWS_RETENTION_INTERVAL_S)."""
    from pipeline.ops.retention import run_retention

    settings = _settings()
    report = run_retention(_es(settings), settings, topics=topics)
    console.print(f"retention: {report.summary()}")


@retention_app.command("status")
def cmd_retention_status() -> None:
    """Sizes of the index families and what retention deletes next."""
    if not print_retention_status(_settings()):
        raise typer.Exit(1)


def print_retention_status(settings=None, *, quiet: bool = False) -> bool:
    """The retention table (used by ``newspipe status`` too); False when Elasticsearch is
    unreachable or has no newspipe indices."""
    from pipeline.ops.retention import human_bytes, status

    settings = settings or _settings()
    try:
        es = _es(settings)
        rows = status(es.options(request_timeout=5, max_retries=0), settings)
    except Exception as exc:
        if not quiet:
            console.print(
                f"[yellow]indices:[/] Elasticsearch at {settings.es_url} not readable ({type(exc).__name__})"
            )
        return False
    if not rows:
        if not quiet:
            console.print(
                f"indices: none under the prefix {settings.index_prefix!r} yet (newspipe setup)"
            )
        return False
    table = Table(
        "family", "indices", "documents", "size", "retention", "next deletion", title="indices"
    )
    for r in rows:
        table.add_row(
            r.family,
            str(r.indices),
            str(r.docs),
            human_bytes(r.bytes),
            r.retention,
            r.next_deletion,
        )
    console.print(table)
    return True


def cmd_migrate(
    families: list[str] = typer.Argument(
        None, help="families to migrate (default: those whose mapping changed incompatibly)"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="only show what needs a migration"),
    keep_old: bool = typer.Option(
        False, help="keep the old indices (out of the alias) after the copy"
    ),
) -> None:
    """Apply mapping changes that need a new index: create it, copy, swap the alias."""
    from pipeline.infra.es import FAMILIES
    from pipeline.ops.migrate import migrate, plan

    settings = _settings()
    es = _es(settings)
    unknown = [f for f in families or [] if f not in FAMILIES]
    if unknown:
        console.print(
            f"[red]unknown families:[/] {', '.join(unknown)} (known: {', '.join(FAMILIES)})"
        )
        raise typer.Exit(2)
    needed = plan(es, settings)
    for family, conflicts in needed.items():
        console.print(f"[yellow]{family}[/] needs a new index: " + "; ".join(conflicts[:5]))
    todo = list(families or needed)
    if not todo:
        console.print("mappings up to date: nothing to migrate")
        return
    if dry_run:
        console.print(f"would migrate: {', '.join(todo)}")
        return
    for family in todo:
        console.print(migrate(es, settings, family, keep_old=keep_old).summary())


def cmd_replay(
    stage: list[str] = typer.Option([], "--stage", help="only letters of this stage (repeatable)"),
    reason: str | None = typer.Option(None, help="only letters whose error contains this text"),
    since: datetime | None = typer.Option(
        None, help="only letters failed since (ISO date/time, UTC)"
    ),
    until: datetime | None = typer.Option(
        None, help="only letters failed before (ISO date/time, UTC)"
    ),
    ids: list[str] = typer.Option([], "--id", help="only letters of this article id (repeatable)"),
    yes: bool = typer.Option(False, "--yes", help="send them (without: a dry run that lists them)"),
) -> None:
    """Send dead letters' original payloads back to the topic their stage reads."""
    from pipeline.ops.replay import Filter, replay

    keep = Filter(stages=tuple(stage), reason=reason, since=since, until=until, ids=tuple(ids))
    report = replay(_settings(), keep, send=yes)
    for topic, letter in report.selected[:50]:
        console.print(
            f"[red]{letter.stage}[/] {letter.error_type}: {letter.error[:100]} [dim]-> {topic} (key {letter.key})[/]"
        )
    if len(report.selected) > 50:
        console.print(f"... and {len(report.selected) - 50} more")
    per_topic = ", ".join(f"{n} to {t}" for t, n in report.by_topic().items()) or "none"
    if yes:
        console.print(f"replayed {report.sent} of {report.read} dead letter(s): {per_topic}")
    else:
        console.print(
            f"dry run: {len(report.selected)} of {report.read} dead letter(s) would be replayed ({per_topic}); --yes sends them"
        )


keys_app = typer.Typer(help="Per-owner API keys: add, list, revoke.", no_args_is_help=True)


def _key_store():
    from pipeline.infra.es import ensure_indices
    from pipeline.ops.keys import KeyStore

    settings = _settings()
    es = _es(settings)
    if not es.indices.exists_alias(name=settings.index("apikeys")):
        ensure_indices(es, settings)
    return KeyStore(es, settings.index("apikeys"))


@keys_app.command("add")
def cmd_keys_add(
    owner: str = typer.Argument(..., help="who the key belongs to (the owner of subscriptions)"),
    admin: bool = typer.Option(
        False, "--admin", help="an admin key: sees and changes every owner's"
    ),
    note: str | None = typer.Option(None, help="what the key is for"),
) -> None:
    """Create an API key (printed once: store it, it cannot be shown again)."""
    try:
        info, key = _key_store().add(owner, admin=admin, note=note)
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    console.print(f"key [bold]{info.key_id}[/] for {info.owner}{' (admin)' if info.admin else ''}:")
    print(key)


@keys_app.command("list")
def cmd_keys_list(
    owner: str | None = typer.Option(None, help="only this owner's keys"),
    revoked: bool = typer.Option(False, "--revoked", help="also revoked keys"),
) -> None:
    """List keys (ids and owners; the keys themselves are not stored)."""
    table = Table("key id", "owner", "admin", "created", "revoked", "note")
    for k in _key_store().list(owner, include_revoked=revoked):
        table.add_row(
            k.key_id,
            k.owner,
            "yes" if k.admin else "",
            k.created_at.isoformat(timespec="seconds"),
            k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else "",
            k.note or "",
        )
    console.print(table)


@keys_app.command("revoke")
def cmd_keys_revoke(
    key_id: str = typer.Argument(..., help="the key id (see `newspipe keys list`)"),
) -> None:
    """Revoke a key: it stops working at once."""
    if not _key_store().revoke(key_id):
        console.print(f"[yellow]no active key {key_id}[/]")
        raise typer.Exit(1)
    console.print(f"revoked {key_id}")
