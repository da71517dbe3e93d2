"""The terminal shell (CLI layer): ``omg <group> <verb> [options]`` over the one registry.

Exit codes: 0 success, 1 an error of the kit (the message says what to do), 2 a usage error.
"""

from __future__ import annotations

import sys

from . import __version__
from .commands import GROUPS, Context, HelpRequested, execute
from .errors import OmgError, UsageError, unknown_choice

TOP_HELP = """usage: omg GROUP VERB [options]

omg {version}: the ML lifecycle kit. The same words work as notebook magics (%omg<group> VERB ...).

groups:
{groups}

`omg GROUP --help` lists its verbs; `omg GROUP VERB --help` shows a verb's options.
Common options on every verb: --format json, --debug, -v/--verbose, -q/--quiet, --project DIR.
"""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``omg`` command; returns the exit code."""
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:
        # the reader went away (`omg ... --help | head`): nothing more to write, and no traceback
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports it


def _main(argv: list[str]) -> int:
    debug = "--debug" in argv
    fmt_json = "--format" in argv and argv[argv.index("--format") + 1:][:1] == ["json"]
    try:
        if not argv or argv[0] in ("-h", "--help", "help"):
            width = max(len(g) for g in GROUPS)
            groups = "\n".join(f"  {g.ljust(width)}  {d}" for g, d in GROUPS.items())
            print(TOP_HELP.format(version=__version__, groups=groups))
            return 0
        if argv[0] == "--version":
            print(f"omg {__version__}")
            return 0
        group = argv[0]
        if group not in GROUPS:
            raise UsageError(unknown_choice("command group", group, GROUPS) +
                             " See `omg --help`.")
        result, ns = execute(group, argv[1:], Context(shell="cli"))
        if result is not None:
            if ns.format == "json" and hasattr(result, "to_json"):
                print(result.to_json())
            else:
                print(result.to_text() if hasattr(result, "to_text") else result)
        return 0
    except HelpRequested as h:
        print(h.text)
        return 0
    except OmgError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        if fmt_json:
            import json

            print(json.dumps({"error": type(exc).__name__, "message": exc.message}))
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence of a CLI
        if debug:
            import traceback

            traceback.print_exc()
        else:
            print(f"error: unexpected {type(exc).__name__}: {exc}. Rerun with --debug for the "
                  "traceback and report it.", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
