"""The IPython shell (magic layer): ``%omgml``, ``%omgdata`` ... over the one registry.

Thin on purpose: split the line, look the verb up, parse, run, display. ``{var}`` expansion stays on,
so papermill parameters flow into magics (``%omgtrain tune --trials {n_trials}``).
"""

from __future__ import annotations

import shlex

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.display import JSON, display

from .commands import GROUPS, Context, HelpRequested, execute, group_help
from .errors import UsageError


class _Help:
    """Help text that shows as preformatted text in a notebook."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        import html

        return f"<pre>{html.escape(self.text)}</pre>"


def _make(group: str):
    def magic(self, line: str = ""):
        return self.dispatch(group, line)

    magic.__name__ = f"omg{group}"
    magic.__doc__ = group_help(group, "magic")
    return line_magic(magic.__name__)(magic)


@magics_class
class OmgMagics(Magics):
    """``%omg<group> <verb> [options]``: the same words as ``omg <group> <verb>``."""

    def dispatch(self, group: str, line: str):
        try:
            argv = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"Cannot split the line: {exc}. Check the quotes.") from None
        ctx = Context(shell="magic", namespace=self.shell.user_ns)
        try:
            result, ns = execute(group, argv, ctx)
        except HelpRequested as h:
            display(_Help(h.text))
            return None
        if ns.out:
            self.shell.user_ns[ns.out] = getattr(result, "value", None) if \
                getattr(result, "value", None) is not None else result
        if ns.format == "json" and hasattr(result, "to_dict"):
            display(JSON(result.to_dict()))
        elif result is not None:
            display(result)
        return None

    for _group in GROUPS:
        locals()[f"omg{_group}"] = _make(_group)
    del _group


def load_ipython_extension(ip) -> None:
    """``%load_ext omgmagics``: register the seven magics and tab completion."""
    ip.register_magics(OmgMagics)
    from .completion import register_completer

    register_completer(ip)
