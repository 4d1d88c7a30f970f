"""Export the JSON Schemas of the topic models to ``schemas/json/<name>.schema.json``.

Run ``python -m schemas.export`` after changing a model; a test fails while the files are stale.
"""

from __future__ import annotations

import json
from pathlib import Path

from schemas import TOPIC_MODELS
from schemas.api import API_MODELS

#: every exported model: topic messages and HTTP API contracts
EXPORTED = {**TOPIC_MODELS, **API_MODELS}

JSON_DIR = Path(__file__).parent / "json"


def render(name: str) -> str:
    schema = EXPORTED[name].model_json_schema(mode="serialization")
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export(directory: Path = JSON_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in EXPORTED:
        path = directory / f"{name}.schema.json"
        path.write_text(render(name), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in export():
        print(path)
