"""Kibana: import the newspipe data views, saved searches, Lens charts and dashboard.

The saved objects live in ``deploy/kibana/saved_objects.ndjson`` (package data ``pipeline.deploy``).
They are written for the default index prefix (``news-articles``, ``news-alerts``);
:func:`render_saved_objects` rewrites the data-view titles for ``settings.index_prefix``.

Usage::

    from pipeline.infra.kibana import import_saved_objects, dashboard_url
    result = import_saved_objects("http://127.0.0.1:5601")
    print(dashboard_url("http://127.0.0.1:5601"))

When Elasticsearch security is on, Kibana wants credentials too: the same
``NEWS_ES_USERNAME``/``NEWS_ES_PASSWORD`` (e.g. ``elastic``) or ``NEWS_ES_API_KEY`` are sent.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pipeline.deploy import resource
from pipeline.settings import Settings, get_settings

DASHBOARD_ID = "newspipe-overview"
"""id of the overview dashboard in saved_objects.ndjson"""

DATA_VIEWS: dict[str, str] = {
    "newspipe-articles": "articles",
    "newspipe-alerts": "alerts",
    "newspipe-stories": "stories",
}
"""data-view (index-pattern) id -> short index name; the title is ``settings.index(name)``"""

OBJECTS_PATH = resource("kibana", "saved_objects.ndjson")
"""the saved objects: ``deploy/kibana/`` of the checkout, package data when installed"""


class KibanaError(RuntimeError):
    """Kibana could not be reached or refused the import."""


class KibanaUnavailable(KibanaError):
    """Kibana did not report ``available`` before the deadline."""


class KibanaImportError(KibanaError):
    """The import API answered, but some objects were not imported."""

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.errors = errors or []


@dataclass
class ImportResult:
    success: bool
    success_count: int
    objects: list[tuple[str, str]] = field(default_factory=list)
    """(type, id) of every object in the file that was sent"""
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)


def default_objects_path() -> Path:
    """The saved-objects file shipped with newspipe."""
    return OBJECTS_PATH


def load_saved_objects(path: Path | None = None) -> list[dict[str, Any]]:
    """Parse the NDJSON file: one saved object per non-blank line."""
    path = Path(path) if path is not None else default_objects_path()
    objects = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            objects.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise KibanaError(f"{path}:{number}: not a JSON object: {exc}") from exc
    return objects


def render_saved_objects(objects: list[dict[str, Any]], settings: Settings) -> list[dict[str, Any]]:
    """Point the data views at ``settings.index(...)`` (the file is written for prefix ``news``)."""
    out = []
    for obj in objects:
        if obj.get("type") == "index-pattern" and obj.get("id") in DATA_VIEWS:
            obj = json.loads(json.dumps(obj))
            obj["attributes"]["title"] = settings.index(DATA_VIEWS[obj["id"]])
        out.append(obj)
    return out


def to_ndjson(objects: list[dict[str, Any]]) -> bytes:
    return "".join(
        json.dumps(o, ensure_ascii=False, separators=(",", ":")) + "\n" for o in objects
    ).encode()


def dashboard_url(kibana_url: str) -> str:
    """Browser URL of the overview dashboard."""
    return f"{kibana_url.rstrip('/')}/app/dashboards#/view/{DASHBOARD_ID}"


def _client_kwargs(settings: Settings, timeout: float) -> dict[str, Any]:
    headers = {"kbn-xsrf": "true"}
    kwargs: dict[str, Any] = {"timeout": timeout, "headers": headers}
    if settings.es_api_key:
        headers["Authorization"] = f"ApiKey {settings.es_api_key}"
    elif settings.es_username and settings.es_password:
        kwargs["auth"] = (settings.es_username, settings.es_password)
    if settings.es_ca_certs:
        kwargs["verify"] = settings.es_ca_certs
    return kwargs


def _status_level(body: Any) -> str | None:
    """``available``/``degraded``/… from /api/status (8.x), or the 7.x ``state`` colour."""
    try:
        overall = body["status"]["overall"]
    except (KeyError, TypeError):
        return None
    if not isinstance(overall, dict):
        return None
    level = overall.get("level")
    if level is None and overall.get("state") == "green":  # Kibana 7.x
        return "available"
    return level if isinstance(level, str) else overall.get("state")


def wait_for_kibana(
    client: httpx.Client, kibana_url: str, *, timeout: float = 300.0, interval: float = 2.0
) -> None:
    """Poll ``/api/status`` until Kibana reports ``available`` or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    url = f"{kibana_url.rstrip('/')}/api/status"
    last = "no answer yet"
    while True:
        try:
            resp = client.get(url)
            if resp.status_code in (401, 403):
                raise KibanaError(
                    f"Kibana at {kibana_url} refused the credentials (HTTP {resp.status_code}); "
                    "set NEWS_ES_USERNAME/NEWS_ES_PASSWORD or NEWS_ES_API_KEY"
                )
            try:
                level = _status_level(resp.json())
            except ValueError:  # "Kibana server is not ready yet" is plain text
                level = None
            if resp.status_code == 200 and level == "available":
                return
            last = f"HTTP {resp.status_code}, status {level or 'unknown'}"
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() + interval > deadline:
            raise KibanaUnavailable(
                f"Kibana at {kibana_url} was not available within {timeout:.0f}s ({last})"
            )
        time.sleep(interval)


def _describe_error(err: dict[str, Any]) -> str:
    what = f"{err.get('type', '?')}:{err.get('id', '?')}"
    title = err.get("title") or (err.get("meta") or {}).get("title")
    if title:
        what += f" ({title!r})"
    detail = err.get("error") or {}
    kind = detail.get("type", "unknown")
    if kind == "missing_references":
        refs = ", ".join(f"{r.get('type')}:{r.get('id')}" for r in detail.get("references", []))
        return f"{what}: missing references {refs}"
    message = detail.get("message") or detail.get("reason") or ""
    return f"{what}: {kind}{' - ' + message if message else ''}"


def import_saved_objects(
    kibana_url: str,
    path: Path | None = None,
    *,
    overwrite: bool = True,
    timeout: float = 300.0,
    settings: Settings | None = None,
    client: httpx.Client | None = None,
) -> ImportResult:
    """Wait for Kibana, then POST the saved objects to ``/api/saved_objects/_import``.

    ``timeout`` bounds the wait for Kibana to become available (the import request itself has
    its own 60 s limit). Raises :class:`KibanaUnavailable` when Kibana is not up in time and
    :class:`KibanaImportError` listing every object Kibana rejected.
    """
    settings = settings or get_settings()
    path = Path(path) if path is not None else default_objects_path()
    objects = render_saved_objects(load_saved_objects(path), settings)
    owns_client = client is None
    if client is None:
        client = httpx.Client(**_client_kwargs(settings, timeout=60.0))
    try:
        wait_for_kibana(client, kibana_url, timeout=timeout)
        resp = client.post(
            f"{kibana_url.rstrip('/')}/api/saved_objects/_import",
            params={"overwrite": "true" if overwrite else "false"},
            files={"file": ("saved_objects.ndjson", to_ndjson(objects), "application/ndjson")},
            headers={"kbn-xsrf": "true"},
        )
    except httpx.HTTPError as exc:
        raise KibanaError(f"importing saved objects into {kibana_url} failed: {exc}") from exc
    finally:
        if owns_client:
            client.close()
    try:
        body = resp.json()
    except ValueError:
        body = {}
    if resp.status_code != 200:
        message = body.get("message") if isinstance(body, dict) else None
        raise KibanaImportError(
            f"Kibana rejected the import of {path.name}: HTTP {resp.status_code} "
            f"{message or resp.text[:500]}"
        )
    result = ImportResult(
        success=bool(body.get("success")),
        success_count=int(body.get("successCount", 0)),
        objects=[(o.get("type"), o.get("id")) for o in objects],
        errors=list(body.get("errors") or []),
        warnings=list(body.get("warnings") or []),
        raw=body,
    )
    if not result.success or result.errors:
        lines = "\n".join(f"  - {_describe_error(e)}" for e in result.errors) or "  (no details)"
        raise KibanaImportError(
            f"Kibana imported {result.success_count} of {len(objects)} saved objects "
            f"from {path}; errors:\n{lines}",
            result.errors,
        )
    return result


def cmd_kibana_setup(
    kibana_url: str | None = None, *, path: Path | None = None, timeout: float = 300.0
) -> ImportResult:
    """``newspipe kibana-setup``: import the saved objects and print the dashboard URL.

    ``kibana_url`` defaults to ``NEWS_KIBANA_URL``. Raises :class:`KibanaError` on failure
    (the CLI turns it into a message and a non-zero exit).
    """
    settings = get_settings()
    url = kibana_url or settings.kibana_url
    result = import_saved_objects(url, path, timeout=timeout, settings=settings)
    print(f"Kibana: imported {result.success_count} saved objects into {url}")
    for warning in result.warnings:
        print(f"Kibana warning: {warning.get('message', warning)}")
    print(f"Dashboard: {dashboard_url(url)}")
    return result
