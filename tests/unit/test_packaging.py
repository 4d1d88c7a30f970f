"""The wheel carries what an installed newspipe needs (no checkout beside it)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOL = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def _package_dirs() -> dict[str, Path]:
    """Every package of the source tree -> its directory (deploy/ is pipeline.deploy)."""
    found = {}
    for top in ("pipeline", "schemas"):
        for init in sorted((ROOT / top).rglob("__init__.py")):
            rel = init.parent.relative_to(ROOT)
            found[".".join(rel.parts)] = init.parent
    found["pipeline.deploy"] = ROOT / "deploy"
    return found


def test_every_package_is_listed():
    listed = set(TOOL["packages"])
    assert listed == set(_package_dirs()), "pyproject [tool.setuptools] packages is out of date"
    for name, directory in TOOL.get("package-dir", {}).items():
        assert (ROOT / directory / "__init__.py").is_file(), name


def _data_files(package: str, directory: Path) -> set[Path]:
    return {p for pattern in TOOL["package-data"].get(package, []) for p in directory.glob(pattern)}


def test_deployment_files_are_package_data():
    deploy = ROOT / "deploy"
    shipped = _data_files("pipeline.deploy", deploy)
    wanted = {
        *deploy.glob("elasticsearch/*.json"),
        deploy / "kibana" / "saved_objects.ndjson",
        deploy / "local" / "pom.xml",
    }
    assert wanted <= shipped, sorted(str(p.relative_to(ROOT)) for p in wanted - shipped)


def test_data_tables_are_package_data():
    data = ROOT / "pipeline" / "data"
    files = {p for p in data.iterdir() if p.is_file()}
    assert files and files <= _data_files("pipeline", ROOT / "pipeline")


def test_code_reads_deployment_files_through_the_package():
    from pipeline.deploy import resource
    from pipeline.infra import es, kibana
    from pipeline.runtime import local

    assert resource("local", "pom.xml") == local.POM and local.POM.is_file()
    assert resource("elasticsearch") == es.TEMPLATES_DIR and es.TEMPLATES_DIR.is_dir()
    assert kibana.OBJECTS_PATH.is_file()


def test_version_option():
    from importlib.metadata import version

    from typer.testing import CliRunner

    from pipeline.cli import app

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"newspipe {version('newspipe')}"
