"""Check that the current JSON Schemas can be read by the last release (and vice versa).

Within a major version a rolling upgrade runs old and new workers side by side, so compared
with the newest snapshot under ``schemas/released/<version>/`` the current ``schemas/json/``
may only *add optional fields*. Incompatible, each reported as one line:

- a model, or a field of a model (nested ``$defs`` included), that the release had is gone;
- a field's schema changed (type, format, enum values, items, reference), descriptions and
  defaults aside;
- a field is required now that the release did not require (its writers omit it).

A new major version (``SCHEMA_VERSION``) may break all of this; record its snapshot then::

    python -m schemas.compat            # exit 1 and one line per break, else "compatible"
    python -m schemas.compat --release  # snapshot schemas/json as schemas/released/<version>/
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from schemas.models import SCHEMA_MAJOR, SCHEMA_VERSION

HERE = Path(__file__).parent
CURRENT = HERE / "json"
RELEASED = HERE / "released"
_NOISE = {"description", "title", "default", "examples"}


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(p) for p in path.name.split("."))


def last_release(released: Path = RELEASED) -> Path | None:
    versions = [p for p in released.iterdir() if p.is_dir()] if released.is_dir() else []
    return max(versions, key=_version_key, default=None)


def _shape(schema: Any) -> Any:
    """A field's schema without what does not change its meaning for a reader."""
    if isinstance(schema, dict):
        return {k: _shape(v) for k, v in schema.items() if k not in _NOISE}
    if isinstance(schema, list):
        return [_shape(v) for v in schema]
    return schema


def _objects(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The model itself ("") and every nested model in ``$defs``, by name."""
    return {"": schema, **schema.get("$defs", {})}


def breaks(old: dict[str, Any], new: dict[str, Any], model: str) -> list[str]:
    """What in ``new`` an old reader or writer of ``old`` would trip over."""
    found = []
    new_objects = _objects(new)
    for name, old_obj in _objects(old).items():
        where = f"{model}.{name}" if name else model
        new_obj = new_objects.get(name)
        if new_obj is None:
            found.append(f"{where}: nested model removed")
            continue
        old_props, new_props = old_obj.get("properties", {}), new_obj.get("properties", {})
        for field, field_schema in old_props.items():
            if field not in new_props:
                found.append(f"{where}.{field}: field removed")
            elif _shape(field_schema) != _shape(new_props[field]):
                found.append(f"{where}.{field}: schema changed")
        for field in sorted(set(new_obj.get("required", [])) - set(old_obj.get("required", []))):
            found.append(f"{where}.{field}: newly required")
    return found


def check(current: Path = CURRENT, release: Path | None = None) -> list[str]:
    """Every incompatibility of ``current`` with ``release`` (default: the last release)."""
    release = release or last_release()
    if release is None:
        return []
    if int(release.name.split(".")[0]) < SCHEMA_MAJOR:
        return []  # a new major version may break; its own snapshot starts the next line
    problems = []
    for old_file in sorted(release.glob("*.schema.json")):
        model = old_file.name.removesuffix(".schema.json")
        new_file = current / old_file.name
        if not new_file.exists():
            problems.append(f"{model}: model removed")
            continue
        old, new = (json.loads(f.read_text(encoding="utf-8")) for f in (old_file, new_file))
        problems += breaks(old, new, model)
    return problems


def release(current: Path = CURRENT, released: Path = RELEASED) -> Path:
    target = released / SCHEMA_VERSION
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for f in current.glob("*.schema.json"):
        shutil.copyfile(f, target / f.name)
    return target


def main(argv: list[str]) -> int:
    if argv[:1] == ["--release"]:
        print(release())
        return 0
    base = last_release()
    problems = check()
    for line in problems:
        print(f"incompatible with release {base.name if base else '?'}: {line}")
    if not problems:
        print(f"compatible with release {base.name if base else '(none recorded)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
