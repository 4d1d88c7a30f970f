"""What the command line prints: search results with facets, and alerts. Shared by the
commands (:mod:`pipeline.cli.app`) and the demo (:mod:`pipeline.cli.demo`)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

console = Console()


def run_search(pipeline, query, entity, event, since, size):
    from pipeline.query.search import search

    return search(
        pipeline.es,
        pipeline.settings.index("articles"),
        query,
        pipeline.resolve_entity,
        entities=entity,
        events=event,
        since=since,
        size=size,
    )


def print_search(result, query: str) -> None:
    console.print(f"[bold]{result.total}[/] article(s) match [cyan]{query or '*'}[/]")
    for n, hit in enumerate(result.hits, 1):
        console.print(
            f"\n[bold]{n}. {hit.title}[/]  [dim]{hit.source or ''} {hit.published_at or ''} id={hit.id}[/]"
        )
        for snippet in hit.snippets:
            console.print("   …" + snippet.replace("«", "[bold yellow]").replace("»", "[/]") + "…")
        if hit.persons or hit.locations or hit.organizations:
            console.print(f"   [green]people[/] {', '.join(hit.persons)}")
            console.print(f"   [green]places[/] {', '.join(hit.locations)}")
            if hit.organizations:
                console.print(f"   [green]organisations[/] {', '.join(hit.organizations)}")
        if hit.events:
            console.print(f"   [magenta]events[/] {', '.join(hit.events)}")
    table = Table(title="facets", show_lines=False)
    for name in result.facets:
        table.add_column(name)
    rows = max((len(v) for v in result.facets.values()), default=0)
    for i in range(rows):
        table.add_row(
            *(f"{v[i][0]} ({v[i][1]})" if i < len(v) else "" for v in result.facets.values())
        )
    if rows:
        console.print(table)


def print_alert(alert) -> None:
    latency = (
        f"{alert.latency_ms:.0f} ms after ingest" if alert.latency_ms is not None else "backfill"
    )
    matched = ", ".join(alert.matched.terms + alert.matched.entities + alert.matched.events)
    console.print(
        f"[bold red]ALERT[/] [cyan]{alert.query}[/] -> [bold]{alert.title}[/] "
        f"[dim]({alert.source or 'unknown source'}, {latency}, matched: {matched})[/]"
    )
    console.print(f"   {alert.snippet.replace('«', '[bold yellow]').replace('»', '[/]')}")
    for update in alert.updates:  # per-story subscriptions: later articles of the story
        console.print(
            f"   [dim]+ update:[/] {update.title} [dim]({update.source or 'unknown source'})[/]"
        )
