"""Schemas evolve without breaking a rolling upgrade (policy: schemas/README.md).

Golden records of every message model, as release 1.0 wrote them, are read by today's models;
records of a newer minor version (unknown fields) are read; a newer major version is refused
with a clear reason; the JSON Schemas stay compatible with the last release.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from pipeline.stream.process import InMessage, decode
from schemas import SCHEMA_VERSION, TOPIC_MODELS, compat

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"
VERSIONS = sorted(p.name for p in GOLDEN.iterdir() if p.is_dir())
CASES = [(v, name) for v in VERSIONS for name in TOPIC_MODELS]


def _golden(version: str, name: str) -> dict:
    return json.loads((GOLDEN / version / f"{name}.json").read_text(encoding="utf-8"))


def test_every_model_has_a_golden_record_of_the_current_version():
    assert SCHEMA_VERSION in VERSIONS
    for name in TOPIC_MODELS:
        assert (GOLDEN / SCHEMA_VERSION / f"{name}.json").is_file(), name


@pytest.mark.parametrize("version,name", CASES)
def test_golden_records_are_read_and_keep_their_fields(version, name):
    record = _golden(version, name)
    model = TOPIC_MODELS[name].model_validate(record)
    assert model.schema_version == record["schema_version"]
    # nothing a release wrote is lost or changed on a re-write (new optional fields may appear)
    _assert_keeps(model.model_dump(mode="json"), record, name)


def _assert_keeps(dumped, written, where: str) -> None:
    if isinstance(written, dict):
        assert isinstance(dumped, dict), where
        for key, value in written.items():
            assert key in dumped, f"{where}.{key} lost"
            _assert_keeps(dumped[key], value, f"{where}.{key}")
    elif isinstance(written, list):
        assert isinstance(dumped, list) and len(dumped) == len(written), where
        for i, (d, w) in enumerate(zip(dumped, written)):
            _assert_keeps(d, w, f"{where}[{i}]")
    else:
        assert dumped == written, where


@pytest.mark.parametrize("name", list(TOPIC_MODELS))
def test_a_newer_minor_version_with_unknown_fields_is_read(name):
    record = copy.deepcopy(_golden(SCHEMA_VERSION, name))
    major = SCHEMA_VERSION.split(".")[0]
    record.update(schema_version=f"{major}.99", field_from_the_future={"nested": [1, 2]})
    model = TOPIC_MODELS[name].model_validate(record)
    if name == "raw_article":  # a producer's own fields are kept, by contract
        assert model.model_extra == {"field_from_the_future": {"nested": [1, 2]}}
    else:
        assert not hasattr(model, "field_from_the_future")


@pytest.mark.parametrize("version", ["2.0", "1", "one.zero", ""])
def test_a_newer_major_or_malformed_version_is_dead_lettered_with_its_reason(version):
    record = _golden(SCHEMA_VERSION, "clean_article") | {"schema_version": version}
    message = InMessage(
        value=json.dumps(record).encode(), key=b"k", topic="news.clean", partition=0, offset=7
    )
    decoded, dead = decode([message], TOPIC_MODELS["clean_article"])
    assert decoded == [] and len(dead) == 1
    assert dead[0].error.startswith("invalid article: schema_version:")
    assert (
        "newer than this newspipe reads" in dead[0].error
        if version == "2.0"
        else "MAJOR.MINOR" in dead[0].error
    )


def test_current_schemas_are_compatible_with_the_last_release():
    assert compat.last_release() is not None
    assert compat.check() == []


def _schema(props: dict, required: list[str]) -> dict:
    return {"type": "object", "properties": props, "required": required}


def test_compat_check_finds_every_kind_of_break():
    old = _schema({"id": {"type": "string"}, "n": {"type": "integer", "description": "x"}}, ["id"])
    assert compat.breaks(old, copy.deepcopy(old), "m") == []
    added_optional = _schema({**old["properties"], "extra": {"type": "string"}}, ["id"])
    assert compat.breaks(old, added_optional, "m") == []
    described = copy.deepcopy(old)
    described["properties"]["n"]["description"] = "reworded"
    assert compat.breaks(old, described, "m") == []
    assert compat.breaks(old, _schema({"id": {"type": "string"}}, ["id"]), "m") == [
        "m.n: field removed"
    ]
    retyped = _schema({"id": {"type": "string"}, "n": {"type": "string"}}, ["id"])
    assert compat.breaks(old, retyped, "m") == ["m.n: schema changed"]
    assert compat.breaks(old, _schema(old["properties"], ["id", "n"]), "m") == [
        "m.n: newly required"
    ]
    nested_old = {**old, "$defs": {"Inner": _schema({"a": {"type": "string"}}, [])}}
    nested_new = {**old, "$defs": {"Inner": _schema({"a": {"type": "number"}}, [])}}
    assert compat.breaks(nested_old, nested_new, "m") == ["m.Inner.a: schema changed"]
