"""The one command registry (command layer).

Each verb is declared once, with its options, by :func:`command` (or :func:`planned` for a verb whose
implementation lands with a later issue). The magics and the CLI are two thin shells over the same
:class:`Command` objects, so ``%omgtrain tune --trials 5`` and ``omg train tune --trials 5`` are parsed
by the very same parser.
"""

from __future__ import annotations

import argparse
import io
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError, NotImplementedYetError, UsageError, did_you_mean, unknown_choice

GROUPS: dict[str, str] = {
    "ml": "the lifecycle: scaffold a project, run the phase notebooks, status, governance gates",
    "data": "collect, validate, audit, label, augment and split data",
    "feature": "extract, select and store versioned feature sets",
    "train": "baselines, training, tuning, ensembles, evaluation and comparison (MLflow-tracked)",
    "optim": "profile, quantize and prune models",
    "deploy": "package bundles, serve over HTTP, roll out to production",
    "ops": "monitoring, drift detection, retraining, pipeline state",
}
GROUP_MODULES = ["ml", "data", "feature", "train", "optim", "deploy", "ops"]


class HelpRequested(Exception):  # noqa: N818 - control flow, not an error
    """Raised by a parser instead of printing help and exiting; carries the help text."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that raises instead of exiting, so a bad flag never kills a kernel."""

    def error(self, message: str):  # type: ignore[override]
        hint = ""
        if message.startswith("unrecognized arguments: "):
            flags = [t for t in message.split(": ", 1)[1].split() if t.startswith("--")]
            if flags:
                known = [o[2:] for o in self._option_string_actions if o.startswith("--")]
                near = did_you_mean(flags[0].split("=", 1)[0][2:], known)  # dashes match any flag
                hint = re.sub(r"(: |, )(?=[\w])", r"\1--", near)
        raise UsageError(f"{self.prog}: {message}.{hint} See `{self.prog} --help`.")

    def exit(self, status: int = 0, message: str | None = None):  # type: ignore[override]
        raise UsageError(message or f"{self.prog}: exited with status {status}")

    def print_help(self, file: Any = None) -> None:
        buf = io.StringIO()
        super().print_help(buf)
        raise HelpRequested(buf.getvalue())


@dataclass(frozen=True)
class Arg:
    """One option of a verb: the ``add_argument`` call, stored."""

    flags: tuple[str, ...]
    kwargs: dict[str, Any]


def arg(*flags: str, **kwargs: Any) -> Arg:
    """Declare an option exactly as for :meth:`argparse.ArgumentParser.add_argument`."""
    if "help" not in kwargs:
        raise TypeError(f"option {flags} needs help text")
    return Arg(flags, kwargs)


def optional_fraction(text: str) -> float | None:
    """An option type: a number, or none/null (so a notebook parameter ``sample_frac = None``
    passes through a ``{sample_frac}`` expansion)."""
    if text.strip().lower() in ("none", "null", ""):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number (or none)") from None


def optional_path(text: str) -> str | None:
    """An option type: a path, or none/null (so a notebook parameter ``data_source = None``
    passes through a ``{data_source}`` expansion)."""
    return None if text.strip().lower() in ("none", "null", "") else text


COMMON = [
    arg("--format", choices=["text", "json"], default="text",
        help="how to show the result: text (a table in a terminal, HTML in a notebook) or json"),
    arg("--out", metavar="NAME", default=None,
        help="in a notebook, bind the result to this variable (a DataFrame or the report object)"),
    arg("--project", metavar="DIR", default=None,
        help="the project folder (default: found by walking up from the working directory)"),
    arg("--debug", action="store_true", help="show the full traceback on errors"),
    arg("-v", "--verbose", action="count", default=0, help="more log output (repeatable)"),
    arg("-q", "--quiet", action="store_true", help="no progress bars and no log output"),
]


@dataclass
class Context:
    """What a command may know about the shell it runs in.

    Parameters
    ----------
    shell : {"magic", "cli"}
    namespace : dict, optional
        The notebook's user namespace: DataFrames in it can be named as inputs.
    """

    shell: str = "cli"
    namespace: dict[str, Any] | None = None
    project_dir: str | None = None
    quiet: bool = False
    _project: Any = None

    def name(self, group: str, verb: str) -> str:
        """How the user typed this command: ``%omgtrain tune`` or ``omg train tune``."""
        return f"%omg{group} {verb}" if self.shell == "magic" else f"omg {group} {verb}"

    def project(self) -> Any:
        """The current project (``--project`` or found by walking up from the working directory)."""
        from ..project import Project

        if self._project is None:
            self._project = Project.at(self.project_dir) if self.project_dir else Project.find()
        return self._project

    def table(self, ref: str, base: str | os.PathLike | None = None) -> Any:
        """A DataFrame named `ref`: a variable of the notebook, or a file path.

        Relative paths are tried from the working directory, then from `base` (the project).
        """
        import pandas as pd

        from ..io import read_table

        if self.namespace is not None and ref.isidentifier() and ref in self.namespace:
            value = self.namespace[ref]
            if isinstance(value, pd.DataFrame):
                return value
            raise DataError(f"The notebook variable '{ref}' is a {type(value).__name__}, not a "
                            "pandas DataFrame. Pass a DataFrame or a file path.")
        path = Path(ref)
        if not path.is_absolute() and not path.exists() and base is not None:
            path = Path(base) / path
        if not path.exists() and self.namespace is not None and ref.isidentifier():
            frames = sorted(k for k, v in self.namespace.items()
                            if isinstance(v, pd.DataFrame) and not k.startswith("_"))
            raise DataError(f"'{ref}' is neither a file nor a DataFrame in the notebook. "
                            f"DataFrames here: {', '.join(frames) or 'none'}.")
        return read_table(path)

    def progress(self, iterable: Iterable | None = None, total: int | None = None,
                 desc: str = "") -> Any:
        """A progress bar: a widget in a notebook, text in a terminal, nothing with ``-q``."""
        if self.shell == "magic":
            from tqdm.auto import tqdm
        else:
            from tqdm import tqdm
        return tqdm(iterable, total=total, desc=desc, disable=self.quiet, leave=True)


@dataclass
class Command:
    """A registered verb: its options, help and the function that runs it."""

    group: str
    verb: str
    help: str
    func: Callable[[argparse.Namespace, Context], Any]
    args: list[Arg] = field(default_factory=list)
    description: str = ""
    examples: list[str] = field(default_factory=list)
    planned_for: str | None = None
    writes: bool | Callable[[argparse.Namespace], bool] = True

    @property
    def implemented(self) -> bool:
        return self.planned_for is None

    def takes_lock(self, ns: argparse.Namespace) -> bool:
        """Whether this call writes shared project state, so runs under the project lock."""
        return bool(self.writes(ns) if callable(self.writes) else self.writes)

    def parser(self, shell: str = "cli") -> CommandParser:
        """The one parser of this verb; `shell` only changes the name shown in help."""
        prog = f"%omg{self.group} {self.verb}" if shell == "magic" else f"omg {self.group} {self.verb}"
        epilog = ""
        if self.examples:
            lead = f"%omg{self.group}" if shell == "magic" else f"omg {self.group}"
            epilog = "examples:\n" + "\n".join(f"  {lead} {e}" for e in self.examples)
        if self.planned_for:
            epilog += f"\n\nNot implemented yet: lands with {self.planned_for}."
        description = self.help + (f"\n\n{self.description}" if self.description else "")
        parser = CommandParser(prog=prog, description=description, epilog=epilog,
                               formatter_class=argparse.RawDescriptionHelpFormatter,
                               allow_abbrev=False)
        for a in self.args:
            parser.add_argument(*a.flags, **a.kwargs)
        common = parser.add_argument_group("common options")
        for a in COMMON:
            common.add_argument(*a.flags, **a.kwargs)
        return parser

    def parse(self, argv: list[str], shell: str = "cli") -> argparse.Namespace:
        return self.parser(shell).parse_args(argv)

    def run(self, ns: argparse.Namespace, ctx: Context) -> Any:
        return self.func(ns, ctx)


REGISTRY: dict[str, dict[str, Command]] = {g: {} for g in GROUPS}


def command(group: str, verb: str, *args: Arg, help: str, description: str = "",
            examples: Iterable[str] = (),
            writes: bool | Callable[[argparse.Namespace], bool] = True) -> Callable:
    """Register the decorated function ``f(ns, ctx) -> Report`` as ``group verb``.

    `writes` says whether the verb writes shared project state (splits, feature sets, models and
    aliases, bundles, deployment, monitoring or retraining state): such a call runs under the project
    lock (:mod:`omgmagics.lock`). True by default; a read-only verb declares ``writes=False``, a verb
    that writes only with some options a function of the parsed namespace.
    """
    def deco(func: Callable) -> Callable:
        _add(Command(group, verb, help, func, list(args), description, list(examples), writes=writes))
        return func
    return deco


def planned(group: str, verb: str, *args: Arg, help: str, issue: str, description: str = "",
            examples: Iterable[str] = ()) -> None:
    """Register a verb whose options are final but whose implementation lands with `issue`."""
    def not_yet(ns: argparse.Namespace, ctx: Context) -> Any:
        raise NotImplementedYetError(
            f"`{ctx.name(group, verb)}` is not implemented yet: it lands with {issue}. "
            f"See `{ctx.name(group, verb)} --help` for the options it will take."
        )
    _add(Command(group, verb, help, not_yet, list(args), description, list(examples), planned_for=issue,
                 writes=False))  # it only raises: nothing to lock


def _add(cmd: Command) -> None:
    if cmd.group not in REGISTRY:
        raise KeyError(f"unknown group {cmd.group}")
    if cmd.verb in REGISTRY[cmd.group] and REGISTRY[cmd.group][cmd.verb].implemented and \
            not cmd.implemented:
        return  # an implementation already registered wins over the plan
    REGISTRY[cmd.group][cmd.verb] = cmd


_loaded = False


def load_all() -> dict[str, dict[str, Command]]:
    """Import every group module (they are light: heavy imports live inside the verbs)."""
    global _loaded
    if not _loaded:
        import importlib

        for name in GROUP_MODULES:
            importlib.import_module(f"omgmagics.commands.{name}")
        _loaded = True
    return REGISTRY


def get_group(group: str) -> dict[str, Command]:
    load_all()
    if group not in REGISTRY:
        raise UsageError(unknown_choice("command group", group, REGISTRY))
    return REGISTRY[group]


def get_command(group: str, verb: str, shell: str = "cli") -> Command:
    """Look up ``group verb``; unknown names raise :class:`UsageError` with a did-you-mean."""
    verbs = get_group(group)
    if verb not in verbs:
        lead = f"%omg{group}" if shell == "magic" else f"omg {group}"
        raise UsageError(unknown_choice(f"verb for {lead}", verb, verbs))
    return verbs[verb]


def group_help(group: str, shell: str = "cli") -> str:
    """The verb list of a group, as shown by ``%omgtrain?`` and ``omg train --help``."""
    verbs = get_group(group)
    lead = f"%omg{group}" if shell == "magic" else f"omg {group}"
    width = max(len(v) for v in verbs)
    lines = [f"{lead} VERB [options]: {GROUPS[group]}", "", "verbs:"]
    for verb, cmd in verbs.items():
        mark = "" if cmd.implemented else f"  [lands with {cmd.planned_for}]"
        lines.append(f"  {verb.ljust(width)}  {cmd.help}{mark}")
    lines += ["", f"`{lead} VERB --help` shows the options of one verb."]
    return "\n".join(lines)


def execute(group: str, argv: list[str], ctx: Context) -> tuple[Any, argparse.Namespace]:
    """Parse ``argv`` (verb first) for `group` and run it: the shells' shared path."""
    if not argv or argv[0] in ("-h", "--help", "help"):
        raise HelpRequested(group_help(group, ctx.shell))
    cmd = get_command(group, argv[0], ctx.shell)
    ns = cmd.parse(argv[1:], ctx.shell)
    ctx.project_dir = ns.project or ctx.project_dir
    ctx.quiet = ctx.quiet or ns.quiet
    from ..log import set_verbosity

    if ns.verbose or ns.quiet:
        set_verbosity(-1 if ns.quiet else ns.verbose)
    store = _embedded_store(ctx.project_dir)
    existed = store is None or store.exists()
    try:
        with _project_lock(cmd, ns, ctx):
            return cmd.run(ns, ctx), ns
    except BaseException:
        if not existed and store.exists():  # a verb that failed leaves no empty store behind
            from ..modeling.tracking import discard_if_empty

            discard_if_empty(store)
        raise


def _project_lock(cmd: Command, ns: argparse.Namespace, ctx: Context) -> Any:
    """The project lock for a verb that writes shared state (see :mod:`omgmagics.lock`); nothing for
    a read-only one, or outside a project (the verb then says why it needs one)."""
    import contextlib

    if not cmd.takes_lock(ns):
        return contextlib.nullcontext()
    from ..errors import OmgError

    try:
        root = ctx.project().root
    except OmgError:
        return contextlib.nullcontext()
    from ..lock import project_lock

    return project_lock(root, f"{cmd.group} {cmd.verb}")


def _embedded_store(project_dir: Any) -> Path | None:
    """``mlflow.db`` of the project at or above `project_dir` (the working folder by default)."""
    start = Path(project_dir or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "omg.yaml").is_file():
            return folder / "mlflow.db"
    return None
