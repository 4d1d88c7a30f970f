"""Deployment files, shipped in the wheel as the package data of ``pipeline.deploy``.

``deploy/`` stays at the top of the source tree (Docker, Kibana, the local runtime's POM sit
beside each other), and ``pyproject.toml`` maps it to the package ``pipeline.deploy``, so an
installed newspipe (``pip install .``, no checkout) reads the same files::

    elasticsearch/<family>.json   index templates (pipeline.infra.es)
    kibana/saved_objects.ndjson   Kibana data views, searches, charts, dashboard (pipeline.infra.kibana)
    local/pom.xml                 what Maven resolves for the local runtime (pipeline.runtime)
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def resource(*parts: str) -> Path:
    """Path of a deployment file, e.g. ``resource("local", "pom.xml")``.

    Package data is installed as plain files (never zipped), so the path is a real one that
    Maven or a file dialog can open.
    """
    return Path(str(files(__name__).joinpath(*parts)))
