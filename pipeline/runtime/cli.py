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

from pipeline.runtime.local import (
    LocalRuntime,
    LocalRuntimeError,
    ServiceStatus,
    free_port_settings,
    with_shape,
)
from pipeline.settings import Settings, get_settings

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


def _runtime(
    brokers: int | None = None, es_nodes: int | None = None, free_ports: bool = False
) -> LocalRuntime:
    """The runtime of the settings, with the cluster shape asked for, else the one ``up``
    recorded in the data dir (so ``down`` and ``status`` find every node)."""
    settings = get_settings()
    update: dict = {}
    if brokers is None and es_nodes is None and not free_ports:
        return LocalRuntime(with_shape(settings))
    else:
        if brokers is not None:
            update["kafka_brokers"] = brokers
        if es_nodes is not None:
            update["es_nodes"] = es_nodes
        if free_ports:
            update.update(
                free_port_settings(brokers or settings.kafka_brokers, es_nodes or settings.es_nodes)
            )
    return LocalRuntime(
        Settings.model_validate({**settings.model_dump(exclude_unset=True), **update})
    )


def cmd_up(
    timeout: float = typer.Option(120.0, help="seconds to wait for the servers to be healthy"),
    brokers: int = typer.Option(
        None, min=1, help="Kafka brokers (3: a KRaft cluster; NEWS_KAFKA_BROKERS)"
    ),
    es_nodes: int = typer.Option(
        None, min=1, help="Elasticsearch nodes (3: a cluster; NEWS_ES_NODES)"
    ),
    free_ports: bool = typer.Option(
        False, help="take free ports from the OS instead of the NEWS_*_PORT settings"
    ),
) -> None:
    """Start the local Kafka and Elasticsearch (downloaded with Maven on first use)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rt = _runtime(brokers, es_nodes, free_ports)
    t0 = time.monotonic()
    try:
        with console.status("starting Kafka and Elasticsearch ..."):
            statuses = rt.up(timeout=timeout)
    except LocalRuntimeError as e:
        console.print("[red]newspipe up failed:[/]", end=" ")
        console.print(str(e), markup=False, highlight=False)
        raise typer.Exit(1) from None
    rt.record_shape()
    console.print(_table(statuses))
    if not any(s.started for s in statuses):
        console.print("already running")
    else:
        console.print(f"ready in {time.monotonic() - t0:.1f}s; data and logs in {rt.data_dir}")
    s = rt.settings
    if s.kafka_brokers > 1 or s.es_nodes > 1 or free_ports:
        replication = min(3, s.kafka_brokers)
        console.print(
            f"export NEWS_KAFKA_BOOTSTRAP={rt.kafka_bootstrap} NEWS_ES_URL={rt.es_url} "
            f"NEWS_TOPIC_REPLICATION={replication} NEWS_ES_REPLICAS={min(1, s.es_nodes - 1)}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def cmd_down() -> None:
    """Stop the local servers started by `up`."""
    stopped = _runtime().down()
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


def cmd_status() -> None:
    """Show what runs where."""
    from pipeline.runtime.health import describe, read_statuses

    runtime = _runtime()
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
