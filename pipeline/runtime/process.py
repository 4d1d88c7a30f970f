"""Process and port helpers of the local runtime: pid files, liveness, listeners, stopping.

Linux only (reads ``/proc``), like the runtime itself.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import time
from collections.abc import Iterable
from pathlib import Path

LISTEN = "0A"  # TCP state "listen" in /proc/net/tcp


# --- pid files ------------------------------------------------------------------------------


def read_pid(path: Path) -> int | None:
    """The pid in ``path``, or None when the file is missing or does not hold a pid."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def write_pid(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{pid}\n")
    tmp.replace(path)


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (index 0 = state, 2 = pgrp)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rfind(")") + 2 :].split()


def pid_alive(pid: int) -> bool:
    """True when ``pid`` runs; a zombie (exited, not yet reaped) counts as gone."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def owned_pid(pid_file: Path, markers: Iterable[str]) -> int | None:
    """The pid recorded in ``pid_file`` if that process is alive and is ours.

    "Ours" means its command line contains every marker (e.g. the main class and the path of
    the config file we wrote), which guards against a recycled pid. A stale pid file (process
    gone or pid reused by something else) is removed.
    """
    pid = read_pid(pid_file)
    if pid is None:
        return None
    args = " ".join(cmdline(pid))
    if pid_alive(pid) and all(m in args for m in markers):
        return pid
    pid_file.unlink(missing_ok=True)
    return None


# --- ports ----------------------------------------------------------------------------------


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when a socket listens on ``host:port`` (or on the wildcard address).

    Binds with SO_REUSEADDR, so connections lingering in TIME_WAIT after a server stopped do
    not count, while a listening socket still makes the bind fail.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def port_accepts(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    """True when a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def listener_pids(port: int) -> list[int]:
    """Pids of the processes holding a listening TCP socket on ``port`` (best effort)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 9 and f[3] == LISTEN and int(f[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f[9])
    wanted = {f"socket:[{i}]" for i in inodes}
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in wanted for fd in (proc / "fd").iterdir()):
                pids.append(int(proc.name))
        except OSError:
            continue
    return sorted(pids)


def describe_pid(pid: int, width: int = 100) -> str:
    """``pid 123: python3 -m http.server`` (command line shortened to ``width``)."""
    args = " ".join(" ".join(cmdline(pid)).split()) or "?"  # one line, single spaces
    if len(args) > width:
        args = args[: width - 3] + "..."
    return f"pid {pid}: {args}"


# --- stopping -------------------------------------------------------------------------------


def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is ``pgid``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            fields = _stat_fields(int(proc.name))
            if fields and fields[0] != "Z" and int(fields[2]) == pgid:
                pids.append(int(proc.name))
    return pids


def stop_group(pid: int, timeout: float = 30.0) -> bool:
    """Stop the process ``pid`` and everything in its process group.

    Our servers are started as leaders of a new session, so the group holds the server and
    every child it forked (Elasticsearch's CLI launcher forks the server JVM). SIGTERM goes to
    the leader first, so it can shut its children down in order; children still there once
    the leader is gone get SIGTERM too, and whatever is left after ``timeout`` gets SIGKILL.
    Returns False when SIGKILL was needed.
    """
    _signal_group(pid, signal.SIGTERM, leader_only=True)
    orphans_signalled = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        members = group_members(pid)
        if not members:
            return True
        if not orphans_signalled and pid not in members:
            _signal_group(pid, signal.SIGTERM)
            orphans_signalled = True
        time.sleep(0.2)
    _signal_group(pid, signal.SIGKILL)
    while group_members(pid):
        time.sleep(0.1)
    return False


def _signal_group(pgid: int, sig: int, leader_only: bool = False) -> None:
    try:
        if leader_only:
            os.kill(pgid, sig)
        else:
            os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def tail(path: Path, lines: int = 30, start: int = 0) -> str:
    """The last ``lines`` lines of a text file, written after byte offset ``start`` (a file
    shorter than that was rotated and is read whole); "" when it does not exist."""
    try:
        with path.open("rb") as f:
            end = f.seek(0, os.SEEK_END)
            f.seek(max(start if start <= end else 0, end - 256 * 1024))
            data = f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(data.splitlines()[-lines:])
