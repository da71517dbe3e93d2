"""Start-up cost: ``import omgmagics`` and ``%load_ext omgmagics`` against bare IPython start-up.

Peer: a fresh ``python -c "import IPython; IPython.core.interactiveshell.InteractiveShell.instance()"``,
the floor every notebook pays. Target: importing and loading the extension adds under one second.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

REPEATS = 7

BARE = "from IPython.core.interactiveshell import InteractiveShell; InteractiveShell.instance()"
LOAD = BARE + "; ip = InteractiveShell.instance(); ip.run_line_magic('load_ext', 'omgmagics')"
IMPORT = "import omgmagics"
HELP = None  # `omg --help` is measured as a command


def _time(code: str | None, argv: list[str] | None = None) -> float:
    runs = []
    for _ in range(REPEATS):
        cmd = argv or [sys.executable, "-c", code]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


INPROC = ("import time; from IPython.core.interactiveshell import InteractiveShell; "
          "ip = InteractiveShell.instance(); t0 = time.perf_counter(); "
          "ip.run_line_magic('load_ext', 'omgmagics'); print(time.perf_counter() - t0)")


def _inproc() -> float:
    runs = [float(subprocess.run([sys.executable, "-c", INPROC], check=True, capture_output=True,
                                 text=True).stdout) for _ in range(REPEATS)]
    return statistics.median(runs)


def run() -> dict:
    python = _time("pass")
    bare = _time(BARE)
    load = _time(LOAD)
    imp = _time(IMPORT)
    omg_help = _time(None, [sys.executable, "-m", "omgmagics.cli", "--help"])
    added = _inproc()  # measured inside the process: start-up noise cancels out
    return {
        "title": "import / %load_ext start-up",
        "figures": {"import_omgmagics_s": imp - python, "load_ext_in_process_s": added,
                    "ipython_plus_load_ext_s": load, "omg_help_s": omg_help},
        "peer": {"name": "bare IPython shell start-up", "ipython_start_s": bare,
                 "python_start_s": python},
        "ratio": load / bare,
        "target": "import and %load_ext each add < 1 s",
        "met": bool(added < 1.0 and imp - python < 1.0),
        "notes": f"median of {REPEATS} fresh processes each",
    }
