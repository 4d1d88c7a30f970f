"""The Elasticsearch client's orjson serializers (pipeline.infra.es.serializers): the bytes the
standard library's serializer sent, for what the pipeline sends and for what orjson refuses."""

from __future__ import annotations

import datetime
import decimal
import uuid

import numpy as np
import pytest
from elasticsearch.serializer import JsonSerializer, NdjsonSerializer

from pipeline.infra.es import FastJsonSerializer, FastNdjsonSerializer, make_client

VALUES = {
    "aware datetime": datetime.datetime(2026, 12, 2, 4, 0, 0, 123456, tzinfo=datetime.UTC),
    "naive datetime": datetime.datetime(2026, 12, 2, 4, 0, 0),
    "date": datetime.date(2026, 1, 2),
    "uuid": uuid.UUID("dbf1339d-0ec4-4b4e-88a9-6db29dadf158"),
    "decimal": decimal.Decimal("1.5"),
    "numpy float": np.float32(1.5),
    "numpy int": np.int64(3),
    "numpy array": np.arange(3),
    "text": "héllo ✓ «Москва» 東京",
    "float": 0.1 + 0.2,
    "nested": {"a": [1, {"b": None, "c": True}], "d": []},
    "integer key": {1: "one"},
    "integer beyond 64 bits": 2**70,
    "lone surrogate": "x\ud800y",
}


@pytest.mark.parametrize("name", VALUES)
def test_the_same_bytes_as_the_standard_librarys(name):
    body = {"field": VALUES[name]}
    assert FastJsonSerializer().dumps(body) == JsonSerializer().dumps(body)
    lines = [{"index": {"_id": "a"}}, body]
    assert FastNdjsonSerializer().dumps(lines) == NdjsonSerializer().dumps(lines)


def test_answers_read_as_the_standard_library_reads_them():
    answer = b'{"took": 3, "items": [{"index": {"_id": "a", "status": 201}}], "x": 1.5e3}'
    assert FastJsonSerializer().loads(answer) == JsonSerializer().loads(answer)
    assert FastJsonSerializer().loads(b"") is None
    ndjson = b'{"a": 1}\n{"b": "\xc3\xbc"}\n'
    assert FastNdjsonSerializer().loads(ndjson) == [{"a": 1}, {"b": "ü"}]
    widest = b'{"unsigned_long": 18446744073709551615, "long": -9223372036854775808}'
    assert FastJsonSerializer().loads(widest) == JsonSerializer().loads(widest)


def test_what_neither_can_serialize_is_the_clients_serialization_error():
    from elastic_transport import SerializationError

    with pytest.raises(SerializationError):
        FastJsonSerializer().dumps({"field": object()})


def test_the_pipelines_client_sends_json_and_ndjson_with_them():
    client = make_client()
    by_type = {k: type(v) for k, v in client.transport.serializers.serializers.items()}
    assert by_type["application/json"] is FastJsonSerializer
    assert by_type["application/x-ndjson"] is FastNdjsonSerializer
    # the compatibility mimetypes the client sends with (compatible-with=8) map to the same
    assert by_type["application/vnd.elasticsearch+json"] is FastJsonSerializer
    assert by_type["application/vnd.elasticsearch+x-ndjson"] is FastNdjsonSerializer
    client.close()
