"""The test harness shares the machine: its servers never take a user's ports or data dir.

CI runs the suite with a user's stack (`newspipe up`, default ports, default data dir) already
running and sets ``NEWS_TEST_BESIDE_USER_STACK=1``; the harness must start its own servers on
free ports and leave the user's running and untouched.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.runtime import LocalRuntime
from pipeline.settings import Settings

pytestmark = pytest.mark.integration


def _port(address: str) -> int:
    return int(address.rstrip("/").rsplit(":", 1)[1])


def _user_settings(servers) -> Settings:
    """What a user's `newspipe up` here uses: default ports, the data dir the session began
    with (``NEWS_DATA_DIR`` or ``<repo>/.newspipe``)."""
    return Settings(_env_file=None, data_dir=servers.user_data_dir)


def test_session_servers_are_not_on_the_default_ports(_servers, kafka_bootstrap, es_url):
    if _servers.origin.startswith("given by"):
        pytest.skip("servers named by NEWS_KAFKA_BOOTSTRAP/NEWS_ES_URL: the harness started none")
    defaults = Settings(_env_file=None)
    assert _port(kafka_bootstrap) not in (defaults.kafka_port, defaults.kafka_controller_port)
    assert _port(es_url) not in (defaults.es_port, defaults.es_port + 100)
    # the code under test writes into the session's data dir, not a user's
    assert (
        Path(os.environ["NEWS_DATA_DIR"]).resolve() != _user_settings(_servers).data_dir.resolve()
    )


def test_user_stack_beside_the_suite_keeps_running(_servers, kafka_bootstrap, es_url):
    if os.environ.get("NEWS_TEST_BESIDE_USER_STACK") != "1":
        pytest.skip("no user stack was started beside this run (CI starts one)")
    statuses = {s.name: s for s in LocalRuntime(_user_settings(_servers)).status()}
    for name in ("kafka", "elasticsearch"):
        assert statuses[name].running, f"the user's {name} is not running: {statuses[name]}"
    assert _port(statuses["kafka"].address) != _port(kafka_bootstrap)
    assert _port(statuses["elasticsearch"].address) != _port(es_url)
