"""``newspipe api`` as a background process for ``newspipe demo``: started once, found again by
its pid file (``<data_dir>/api.pid``), log in ``<data_dir>/logs/api.log``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from pipeline.api.auth import resolve_token
from pipeline.settings import Settings


@dataclass
class RunningApi:
    pid: int
    base_url: str
    token: str
    started: bool  # False: one was already running

    @property
    def page_url(self) -> str:
        """The web page, with the token in the fragment (the page keeps it; never sent to a server)."""
        return f"{self.base_url}/#token={self.token}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _healthy(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def ensure_api(settings: Settings, timeout_s: float = 60.0) -> RunningApi:
    """The API of these settings, started in the background unless already up."""
    token, _ = resolve_token(settings)  # before the server starts: both read the same file
    host = settings.api_host
    base_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{settings.api_port}"
    pid_path = Path(settings.data_dir) / "api.pid"
    if pid_path.exists():
        pid = int(pid_path.read_text().strip() or 0)
        if pid and _alive(pid) and _healthy(base_url):
            return RunningApi(pid, base_url, token, started=False)
    log_path = Path(settings.data_dir) / "logs" / "api.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "api"],
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
        env=os.environ.copy(),
        start_new_session=True,
    )
    pid_path.write_text(f"{process.pid}\n")
    deadline = time.monotonic() + timeout_s
    while not _healthy(base_url):
        if process.poll() is not None or time.monotonic() > deadline:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
            raise RuntimeError(f"the API did not start on {base_url} (see {log_path}):\n{tail}")
        time.sleep(0.3)
    return RunningApi(process.pid, base_url, token, started=True)
