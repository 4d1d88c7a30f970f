"""Kibana saved objects (deploy/kibana/saved_objects.ndjson) and pipeline.infra.kibana.

Structural checks: the NDJSON has the Kibana 8.19 saved-object shape, every reference resolves,
and every field a data view, saved search or Lens chart uses exists in the index template of
deploy/elasticsearch/ with a type Kibana can use for that purpose. The import client is
exercised against a mock transport (no Kibana needed).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from pipeline.infra import kibana
from pipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
NDJSON = ROOT / "deploy" / "kibana" / "saved_objects.ndjson"
TEMPLATES = ROOT / "deploy" / "elasticsearch"

ALLOWED_TYPES = {"index-pattern", "search", "lens", "visualization", "dashboard"}
# Highest typeMigrationVersion each type may carry so that Kibana 8.19 imports (and migrates)
# it: a version newer than the server knows is rejected. Values from real 8.x exports.
MAX_TYPE_VERSION = {
    "index-pattern": "8.0.0",
    "search": "10.5.0",
    "lens": "8.9.0",
    "visualization": "8.5.0",
    "dashboard": "10.2.0",
}
# Attributes the 8.x create schemas accept (dashboard: unknowns are forbidden).
DASHBOARD_ATTRS = {
    "title",
    "description",
    "kibanaSavedObjectMeta",
    "timeRestore",
    "timeFrom",
    "timeTo",
    "refreshInterval",
    "controlGroupInput",
    "panelsJSON",
    "optionsJSON",
    "hits",
    "version",
}
SEARCH_ATTRS = {
    "title",
    "description",
    "columns",
    "sort",
    "grid",
    "rowHeight",
    "rowsPerPage",
    "hideChart",
    "breakdownField",
    "kibanaSavedObjectMeta",
    "isTextBasedQuery",
    "usesAdHocDataView",
    "timeRestore",
    "timeRange",
    "refreshInterval",
    "viewMode",
    "hideAggregatedPreview",
    "hits",
    "version",
}
LENS_ATTRS = {"title", "description", "visualizationType", "state"}

NUMERIC = {
    "long",
    "integer",
    "short",
    "byte",
    "double",
    "float",
    "half_float",
    "scaled_float",
    "unsigned_long",
}
AGGREGATABLE = NUMERIC | {"keyword", "boolean", "date", "date_nanos", "ip", "constant_keyword"}
SORTABLE = AGGREGATABLE
GRID_COLUMNS = 48


def version_tuple(v: str) -> tuple[int, ...]:
    assert re.fullmatch(r"\d+\.\d+\.\d+", v), v
    return tuple(int(p) for p in v.split("."))


def mapping_fields(properties: dict, prefix: str = "") -> dict[str, str]:
    """Flatten index-template properties: path -> type, incl. sub-fields and object paths."""
    out: dict[str, str] = {}
    for name, spec in properties.items():
        path = f"{prefix}{name}"
        if "properties" in spec:
            out[path] = "object"
            out.update(mapping_fields(spec["properties"], path + "."))
            continue
        ftype = spec.get("type", "object")
        if spec.get("enabled") is False:
            ftype = "disabled"
        out[path] = ftype
        for sub, subspec in spec.get("fields", {}).items():
            out[f"{path}.{sub}"] = subspec.get("type", "object")
    return out


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    return kibana.load_saved_objects(NDJSON)


@pytest.fixture(scope="module")
def by_key(objects) -> dict[tuple[str, str], dict]:
    return {(o["type"], o["id"]): o for o in objects}


def shipped_settings() -> Settings:
    """The settings the shipped objects were made for: the default index prefix, whatever
    NEWS_INDEX_PREFIX a test stack in the same session has set."""
    return Settings(_env_file=None, index_prefix=Settings.model_fields["index_prefix"].default)


@pytest.fixture(scope="module")
def fields_of(objects) -> dict[str, dict[str, str]]:
    """data-view id -> {field: type} from the index template its title names (the shipped
    objects name the default prefix, whatever NEWS_INDEX_PREFIX a test stack has set)."""
    settings = shipped_settings()
    prefix = settings.index("")
    out = {}
    for o in objects:
        if o["type"] != "index-pattern":
            continue
        title = o["attributes"]["title"]
        assert title.startswith(prefix), f"{o['id']}: title {title!r} is not a {prefix}* index"
        template = TEMPLATES / f"{title[len(prefix) :]}.json"
        assert template.is_file(), f"{o['id']}: no index template {template.name} for {title}"
        body = json.loads(template.read_text())
        out[o["id"]] = mapping_fields(body["mappings"]["properties"])
    return out


def refs_by_name(obj: dict) -> dict[str, dict]:
    return {r["name"]: r for r in obj["references"]}


# --- file and object shape -------------------------------------------------------------------


def test_ndjson_parses_line_by_line():
    lines = NDJSON.read_text(encoding="utf-8").splitlines()
    assert lines, "empty saved objects file"
    for number, line in enumerate(lines, 1):
        assert line.strip(), f"blank line {number}"
        obj = json.loads(line)
        assert isinstance(obj, dict), f"line {number} is not a JSON object"


def test_saved_object_shape(objects):
    seen = set()
    for o in objects:
        where = f"{o.get('type')}:{o.get('id')}"
        assert o["type"] in ALLOWED_TYPES, where
        assert isinstance(o["id"], str) and re.fullmatch(r"[a-z0-9][a-z0-9-]*", o["id"]), where
        assert (o["type"], o["id"]) not in seen, f"duplicate {where}"
        seen.add((o["type"], o["id"]))
        assert isinstance(o["attributes"], dict) and o["attributes"].get("title"), where
        assert isinstance(o["references"], list), where
        for ref in o["references"]:
            assert set(ref) == {"name", "type", "id"}, (where, ref)
            assert all(isinstance(ref[k], str) and ref[k] for k in ref), (where, ref)
        names = [r["name"] for r in o["references"]]
        assert len(names) == len(set(names)), f"{where}: duplicate reference names"
        # migration metadata: Kibana migrates the object from these versions up to 8.19
        assert "migrationVersion" not in o, f"{where}: use typeMigrationVersion on 8.x"
        assert o["coreMigrationVersion"] == "8.8.0", where
        assert version_tuple(o["typeMigrationVersion"]) <= version_tuple(
            MAX_TYPE_VERSION[o["type"]]
        ), f"{where}: typeMigrationVersion newer than Kibana 8.19 accepts"


def test_references_resolve_within_the_file(objects, by_key):
    for o in objects:
        for ref in o["references"]:
            assert (ref["type"], ref["id"]) in by_key, (
                f"{o['type']}:{o['id']} references missing {ref['type']}:{ref['id']}"
            )


def test_attributes_fit_the_kibana_schemas(objects):
    allowed = {"dashboard": DASHBOARD_ATTRS, "search": SEARCH_ATTRS, "lens": LENS_ATTRS}
    for o in objects:
        if o["type"] in allowed:
            extra = set(o["attributes"]) - allowed[o["type"]]
            assert not extra, f"{o['type']}:{o['id']} has unknown attributes {extra}"


# --- data views --------------------------------------------------------------------------------


def test_data_views(objects, fields_of):
    views = {o["id"]: o for o in objects if o["type"] == "index-pattern"}
    settings = shipped_settings()
    assert set(views) == set(kibana.DATA_VIEWS)
    for view_id, short in kibana.DATA_VIEWS.items():
        attrs = views[view_id]["attributes"]
        assert attrs["title"] == settings.index(short)
        assert attrs["timeFieldName"] == "@timestamp"
        assert fields_of[view_id]["@timestamp"] == "date"
        for key in ("fields", "fieldAttrs", "fieldFormatMap", "runtimeFieldMap", "sourceFilters"):
            if key in attrs:
                json.loads(attrs[key])  # serialised JSON strings, as Kibana stores them


# --- saved searches ----------------------------------------------------------------------------


def search_source(obj: dict) -> dict:
    return json.loads(obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])


def search_view(obj: dict) -> str:
    source = search_source(obj)
    ref = refs_by_name(obj)[source["indexRefName"]]
    assert ref["type"] == "index-pattern"
    return ref["id"]


def test_saved_search_fields_exist(objects, fields_of):
    searches = [o for o in objects if o["type"] == "search"]
    assert searches
    for s in searches:
        where = f"search:{s['id']}"
        fields = fields_of[search_view(s)]
        source = search_source(s)
        assert source["query"]["language"] in {"kuery", "lucene"}, where
        assert s["attributes"]["columns"], where
        for column in s["attributes"]["columns"]:
            assert column in fields, f"{where}: column {column!r} not in the mapping"
            assert fields[column] not in {"object", "disabled"}, f"{where}: {column} is an object"
        for sort in s["attributes"]["sort"]:
            field, direction = sort
            assert direction in {"asc", "desc"}, where
            assert fields.get(field) in SORTABLE, f"{where}: cannot sort on {field}"


def test_required_saved_searches(objects):
    searches = {o["attributes"]["title"]: o for o in objects if o["type"] == "search"}
    memo = searches["memorandum"]
    assert search_view(memo) == "newspipe-articles"
    assert search_source(memo)["query"]["query"] == "memorandum"
    assert memo["attributes"]["columns"] == ["title", "source", "persons", "event_types"]

    latest = searches["Latest articles with entities"]
    assert search_view(latest) == "newspipe-articles"
    assert latest["attributes"]["columns"] == [
        "title",
        "source",
        "persons",
        "organizations",
        "locations",
        "event_types",
    ]
    assert latest["attributes"]["sort"] == [["@timestamp", "desc"]]

    alerts = [s for s in searches.values() if search_view(s) == "newspipe-alerts"]
    assert alerts, "no saved search on the alerts data view"
    assert alerts[0]["attributes"]["columns"] == [
        "query",
        "title",
        "source",
        "matched.terms",
        "latency_ms",
        "status",
        "deliveries.state",
    ]


# --- Lens --------------------------------------------------------------------------------------


def lens_layers(obj: dict) -> dict[str, dict]:
    return obj["attributes"]["state"]["datasourceStates"]["formBased"]["layers"]


def lens_view(obj: dict, layer_id: str) -> str:
    ref = refs_by_name(obj)[f"indexpattern-datasource-layer-{layer_id}"]
    assert ref["type"] == "index-pattern"
    return ref["id"]


def check_column(where: str, column: dict, fields: dict[str, str]) -> None:
    op = column["operationType"]
    field = column.get("sourceField")
    if op == "count" and field == "___records___":
        return
    assert field in fields, f"{where}: {op} on {field!r}, not in the mapping"
    ftype = fields[field]
    if op == "date_histogram":
        assert ftype in {"date", "date_nanos"}, f"{where}: date histogram on {field} ({ftype})"
        assert column["dataType"] == "date"
    elif op in {"terms", "count", "unique_count", "last_value"}:
        assert ftype in AGGREGATABLE, f"{where}: {op} on {field} ({ftype}) is not aggregatable"
    elif op in {"sum", "average", "min", "max", "median", "percentile", "standard_deviation"}:
        assert ftype in NUMERIC, f"{where}: {op} on {field} ({ftype}) is not numeric"
    else:
        pytest.fail(f"{where}: unchecked Lens operation {op}")


def test_lens_fields_exist_with_usable_types(objects, fields_of):
    charts = [o for o in objects if o["type"] == "lens"]
    assert charts
    for chart in charts:
        layers = lens_layers(chart)
        assert layers, chart["id"]
        vis = chart["attributes"]["state"]["visualization"]
        assert chart["attributes"]["visualizationType"] == "lnsXY"
        vis_layers = {layer["layerId"]: layer for layer in vis["layers"]}
        assert set(vis_layers) == set(layers), chart["id"]
        for layer_id, layer in layers.items():
            where = f"lens:{chart['id']}"
            fields = fields_of[lens_view(chart, layer_id)]
            columns = layer["columns"]
            assert sorted(layer["columnOrder"]) == sorted(columns), where
            for column in columns.values():
                check_column(where, column, fields)
                if column["operationType"] == "terms":
                    order = column["params"]["orderBy"]
                    if order["type"] == "column":
                        assert order["columnId"] in columns, where
            accessors = list(vis_layers[layer_id]["accessors"])
            for key in ("xAccessor", "splitAccessor"):
                if key in vis_layers[layer_id]:
                    accessors.append(vis_layers[layer_id][key])
            for accessor in accessors:
                assert accessor in columns, f"{where}: accessor {accessor} has no column"


def lens_signature(obj: dict) -> tuple[str, set[tuple[str, str]]]:
    """(data view, {(operation, field)}) of a single-layer chart."""
    ((layer_id, layer),) = lens_layers(obj).items()
    ops = {(c["operationType"], c.get("sourceField")) for c in layer["columns"].values()}
    return lens_view(obj, layer_id), ops


def test_required_charts(objects):
    sigs = [lens_signature(o) for o in objects if o["type"] == "lens"]

    def has(view: str, *ops: tuple[str, str]) -> bool:
        return any(v == view and set(ops) <= s for v, s in sigs)

    time = ("date_histogram", "@timestamp")
    assert has("newspipe-articles", time, ("terms", "source")), "articles over time by source"
    assert has("newspipe-articles", time, ("terms", "event_types")), "event types over time"
    for entity in ("persons", "organizations", "locations"):
        assert has("newspipe-articles", ("terms", entity)), f"top {entity}"
    assert has("newspipe-alerts", time, ("terms", "query")) or has(
        "newspipe-alerts", time, ("terms", "subscription_id")
    ), "alerts over time by subscription"


# --- dashboard ---------------------------------------------------------------------------------


def test_dashboard_panels(by_key):
    dash = by_key[("dashboard", kibana.DASHBOARD_ID)]
    attrs = dash["attributes"]
    panels = json.loads(attrs["panelsJSON"])
    json.loads(attrs["optionsJSON"])
    json.loads(attrs["kibanaSavedObjectMeta"]["searchSourceJSON"])
    refs = refs_by_name(dash)
    assert len(refs) == len(panels)
    cells: set[tuple[int, int]] = set()
    panel_targets = []
    for panel in panels:
        pid = panel["panelIndex"]
        grid = panel["gridData"]
        assert grid["i"] == pid
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["y"] >= 0
        assert grid["x"] + grid["w"] <= GRID_COLUMNS, f"panel {pid} is wider than the grid"
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & mine, f"panel {pid} overlaps another panel"
        cells |= mine
        ref = refs[f"{pid}:{panel['panelRefName']}"]
        assert ref["type"] == panel["type"]
        panel_targets.append((ref["type"], ref["id"]))
    # every chart and the alerts table are on the dashboard
    assert ("search", "newspipe-search-latest-alerts") in panel_targets
    lens_ids = {key[1] for key in by_key if key[0] == "lens"}
    assert lens_ids <= {oid for typ, oid in panel_targets if typ == "lens"}


# --- pipeline.infra.kibana ---------------------------------------------------------------------------


def test_default_path_is_the_repo_file():
    assert kibana.default_objects_path() == NDJSON
    assert kibana.OBJECTS_PATH == NDJSON


def test_dashboard_url():
    assert kibana.dashboard_url("http://kibana:5601/") == (
        "http://kibana:5601/app/dashboards#/view/newspipe-overview"
    )


def test_render_follows_the_index_prefix(objects):
    rendered = kibana.render_saved_objects(objects, Settings(_env_file=None, index_prefix="acme"))
    titles = {o["id"]: o["attributes"]["title"] for o in rendered if o["type"] == "index-pattern"}
    assert titles == {
        "newspipe-articles": "acme-articles",
        "newspipe-alerts": "acme-alerts",
        "newspipe-stories": "acme-stories",
    }
    # the input is left alone
    assert {o["attributes"]["title"] for o in objects if o["type"] == "index-pattern"} == {
        "news-articles",
        "news-alerts",
        "news-stories",
    }


class FakeKibana:
    def __init__(self, statuses: list[tuple[int, object]], import_body: dict, import_code=200):
        self.statuses = list(statuses)
        self.import_body = import_body
        self.import_code = import_code
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/api/status":
            code, body = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
            if isinstance(body, str):
                return httpx.Response(code, text=body)
            return httpx.Response(code, json=body)
        if request.url.path == "/api/saved_objects/_import":
            return httpx.Response(self.import_code, json=self.import_body)
        return httpx.Response(404, json={"message": "not found"})


def available(level: str = "available") -> dict:
    return {"status": {"overall": {"level": level, "summary": "x"}}}


def client_for(fake: FakeKibana) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(fake), headers={"kbn-xsrf": "true"})


def test_import_waits_for_kibana_then_uploads(monkeypatch, objects):
    monkeypatch.setattr(kibana.time, "sleep", lambda s: None)
    fake = FakeKibana(
        [
            (503, "Kibana server is not ready yet"),
            (503, available("unavailable")),
            (200, available()),
        ],
        {"success": True, "successCount": len(objects)},
    )
    settings = Settings(_env_file=None)
    result = kibana.import_saved_objects(
        "http://kibana:5601", NDJSON, settings=settings, client=client_for(fake), timeout=30
    )
    assert result.success and result.success_count == len(objects)
    assert [r.url.path for r in fake.requests] == ["/api/status"] * 3 + [
        "/api/saved_objects/_import"
    ]
    upload = fake.requests[-1]
    assert upload.method == "POST"
    assert upload.url.params["overwrite"] == "true"
    assert upload.headers["kbn-xsrf"] == "true"
    assert upload.headers["content-type"].startswith("multipart/form-data")
    body = upload.read()
    assert b'name="file"; filename="saved_objects.ndjson"' in body
    assert b'"id":"newspipe-overview"' in body


def test_import_errors_are_listed(monkeypatch):
    fake = FakeKibana(
        [(200, available())],
        {
            "success": False,
            "successCount": 10,
            "errors": [
                {
                    "id": "newspipe-top-persons",
                    "type": "lens",
                    "meta": {"title": "Top persons"},
                    "error": {
                        "type": "missing_references",
                        "references": [{"type": "index-pattern", "id": "newspipe-articles"}],
                    },
                },
                {
                    "id": "newspipe-overview",
                    "type": "dashboard",
                    "title": "newspipe overview",
                    "error": {"type": "unknown", "message": "bad panelsJSON"},
                },
            ],
        },
    )
    with pytest.raises(kibana.KibanaImportError) as info:
        kibana.import_saved_objects(
            "http://kibana:5601", NDJSON, settings=Settings(_env_file=None), client=client_for(fake)
        )
    message = str(info.value)
    assert "lens:newspipe-top-persons" in message
    assert "missing references index-pattern:newspipe-articles" in message
    assert "dashboard:newspipe-overview" in message and "bad panelsJSON" in message
    assert len(info.value.errors) == 2


def test_import_http_error_is_reported():
    fake = FakeKibana([(200, available())], {"message": "Unsupported Content-Type"}, 415)
    with pytest.raises(kibana.KibanaImportError, match="HTTP 415.*Unsupported Content-Type"):
        kibana.import_saved_objects(
            "http://kibana:5601", NDJSON, settings=Settings(_env_file=None), client=client_for(fake)
        )


def test_unavailable_kibana_times_out(monkeypatch):
    clock = iter(range(0, 10_000, 5))
    monkeypatch.setattr(kibana.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(kibana.time, "sleep", lambda s: None)
    fake = FakeKibana([(503, available("degraded"))], {"success": True})
    with pytest.raises(kibana.KibanaUnavailable, match="not available within 60s.*degraded"):
        kibana.import_saved_objects(
            "http://kibana:5601",
            NDJSON,
            settings=Settings(_env_file=None),
            client=client_for(fake),
            timeout=60,
        )
    assert all(r.url.path == "/api/status" for r in fake.requests)


def test_credentials_come_from_the_es_settings():
    kwargs = kibana._client_kwargs(
        Settings(_env_file=None, es_username="elastic", es_password="s3cret"), timeout=5
    )
    assert kwargs["auth"] == ("elastic", "s3cret")
    assert kwargs["headers"]["kbn-xsrf"] == "true"
    kwargs = kibana._client_kwargs(Settings(_env_file=None, es_api_key="abc"), timeout=5)
    assert kwargs["headers"]["Authorization"] == "ApiKey abc"
    assert "auth" not in kwargs
