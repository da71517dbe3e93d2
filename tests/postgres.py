"""A throwaway PostgreSQL cluster for the scale-out tests: Debian's server binaries, a temporary data
folder, a free port on 127.0.0.1, trust authentication; stopped and deleted afterwards.

``make test`` installs Debian's ``postgresql`` package when its binaries are missing (system-deps).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path


def find_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root: drop to the package's 'postgres' user.
    return ["runuser", "-u", "postgres", "--"] + cmd if os.geteuid() == 0 else cmd


@contextmanager
def postgres_cluster(database: str = "omg"):
    """Yield a SQLAlchemy URL ``postgresql://postgres@127.0.0.1:PORT/omg`` of a fresh cluster."""
    bindir = find_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries not found; `make test` installs Debian's "
                           "postgresql package")
    base = Path(tempfile.mkdtemp(prefix="omg-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
    port = _free_port()
    log = base / "server.log"
    try:
        subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                                     "--auth=trust", "-E", "UTF8", "--no-sync"]),
                       check=True, capture_output=True)
        subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w",
                                     "-o", f"-c listen_addresses=127.0.0.1 -c port={port} "
                                     f"-c unix_socket_directories={sock} -c fsync=off "
                                     "-c max_connections=200", "start"]),
                       check=True, capture_output=True, timeout=60)
        subprocess.run(_as_postgres([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port),
                                     "-U", "postgres", database]), check=True, capture_output=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/{database}"
    finally:
        if data.exists():
            subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w",
                                         "stop"]), capture_output=True, timeout=60)
        time.sleep(0.1)
        shutil.rmtree(base, ignore_errors=True)
