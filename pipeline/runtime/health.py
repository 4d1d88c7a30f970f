"""What a worker is doing right now: the server it waits for, its consumer lag, its last error.

Every retry loop of the pipeline (:func:`pipeline.stream.process.retry_transient`, the subscription
follower, the worker's agents) reports here while it waits for a server and when it goes on
again. The worker writes the snapshot once a second to ``<data dir>/run/worker-<pid>.status.json``
(read by ``newspipe status``) and serves it at ``/health`` on its web port when that is on.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any


class WorkerHealth:
    """Process-wide, thread-safe record of waits and errors (see :data:`HEALTH`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waits: dict[str, dict[str, Any]] = {}
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.retries = 0

    def waiting(self, what: str, server: str, error: BaseException | str) -> None:
        """``what`` (a stage or step) cannot go on until ``server`` answers again."""
        text = _one_line(error)
        with self._lock:
            wait = self._waits.setdefault(what, {"since": time.time()})
            wait["server"], wait["error"] = server, text
            self.last_error, self.last_error_at = f"{what}: {text}", time.time()
            self.retries += 1

    def resumed(self, what: str) -> None:
        with self._lock:
            self._waits.pop(what, None)

    def error(self, what: str, error: BaseException | str) -> None:
        """An error that was not a wait (e.g. a batch dead-lettered as a whole)."""
        with self._lock:
            self.last_error, self.last_error_at = f"{what}: {_one_line(error)}", time.time()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            waits = {k: dict(v) for k, v in self._waits.items()}
            return {
                "waiting_for": sorted({w["server"] for w in waits.values()}),
                "waits": waits,
                "last_error": self.last_error,
                "last_error_at": self.last_error_at,
                "retries": self.retries,
            }

    def reset(self) -> None:
        with self._lock:
            self._waits.clear()
            self.last_error = self.last_error_at = None
            self.retries = 0


HEALTH = WorkerHealth()


def _one_line(error: BaseException | str) -> str:
    if isinstance(error, BaseException):
        text = str(error) or repr(error)
        name = type(error).__name__
        text = text if text.startswith(name) else f"{name}: {text}"
    else:
        text = error
    line = " ".join(text.split())
    return line if len(line) <= 300 else line[:297] + "..."


def status_path(data_dir: Path, pid: int) -> Path:
    return Path(data_dir) / "run" / f"worker-{pid}.status.json"


def write_status(path: Path, status: dict[str, Any]) -> None:
    """Replace the status file atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(status, default=str), encoding="utf-8")
    os.replace(tmp, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_statuses(data_dir: Path) -> list[dict[str, Any]]:
    """The status of every worker of this data dir whose process is alive (stale files of dead
    workers are removed)."""
    run = Path(data_dir) / "run"
    out = []
    for path in sorted(run.glob("worker-*.status.json")) if run.exists() else []:
        try:
            status = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        pid = status.get("pid")
        if not isinstance(pid, int) or not _alive(pid):
            path.unlink(missing_ok=True)
            continue
        status["age_s"] = round(time.time() - float(status.get("written_at", 0)), 1)
        out.append(status)
    return out


def describe(status: dict[str, Any]) -> str:
    """One line per worker for ``newspipe status``."""
    waiting = ", ".join(status.get("waiting_for") or []) or "nothing"
    lag = status.get("lag")
    total = sum(lag.values()) if isinstance(lag, dict) else None
    parts = [
        f"worker pid {status.get('pid')}",
        f"waiting for {waiting}",
        f"consumer lag {total if total is not None else 'unknown'}",
        f"last error: {status.get('last_error') or 'none'}",
    ]
    if status.get("age_s", 0) > 10:
        parts.append(f"(status {status['age_s']:.0f}s old: worker stuck?)")
    return "; ".join(parts)
