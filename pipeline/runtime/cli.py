"""CLI commands of the local runtime.

Mount them on the main app with ``app.command("up")(cmd_up)`` etc., or as a group with
``app.add_typer(runtime_app, name="runtime")``.
"""

from __future__ import annotations

import logging
import time

import typer
from rich.console import Console
from rich.table import Table

from pipeline.runtime.local import LocalRuntime, LocalRuntimeError, ServiceStatus

console = Console()


def _table(statuses: list[ServiceStatus]) -> Table:
    t = Table("service", "state", "pid", "address", "version", "health")
    for s in statuses:
        if s.running:
            state = "[green]started[/]" if s.started else "[green]running[/]"
        else:
            state = "[red]stopped[/]"
        t.add_row(s.name, state, str(s.pid or ""), s.address, s.version or "", s.health or "")
    return t


def cmd_up(
    timeout: float = typer.Option(120.0, help="seconds to wait for the servers to be healthy"),
) -> None:
    """Start the local Kafka and Elasticsearch (downloaded with Maven on first use)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rt = LocalRuntime()
    t0 = time.monotonic()
    try:
        with console.status("starting Kafka and Elasticsearch ..."):
            statuses = rt.up(timeout=timeout)
    except LocalRuntimeError as e:
        console.print("[red]newspipe up failed:[/]", end=" ")
        console.print(str(e), markup=False, highlight=False)
        raise typer.Exit(1) from None
    console.print(_table(statuses))
    if not any(s.started for s in statuses):
        console.print("already running")
    else:
        console.print(f"ready in {time.monotonic() - t0:.1f}s; data and logs in {rt.data_dir}")


def cmd_down() -> None:
    """Stop the local servers started by `up`."""
    stopped = LocalRuntime().down()
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


def cmd_status() -> None:
    """Show what runs where."""
    from pipeline.runtime.health import describe, read_statuses

    runtime = LocalRuntime()
    statuses = runtime.status()
    console.print(_table(statuses))
    for s in statuses:
        if s.note:
            console.print(f"[yellow]{s.name}:[/] {s.note}")
    workers = read_statuses(runtime.settings.data_dir)
    for worker in workers:  # what each worker waits for, its consumer lag, its last error
        console.print(describe(worker), markup=False, highlight=False)
    if not workers:
        console.print("no worker running (newspipe worker)")
    from pipeline.ops.cli import print_retention_status

    print_retention_status(quiet=True)  # index sizes and the next deletion, when reachable


runtime_app = typer.Typer(
    help="Local Kafka + Elasticsearch (no Docker needed).", no_args_is_help=True
)
runtime_app.command("up")(cmd_up)
runtime_app.command("down")(cmd_down)
runtime_app.command("status")(cmd_status)
