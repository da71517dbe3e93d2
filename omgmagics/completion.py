"""Tab completion of verbs and options after ``%omg<group> `` (magic layer)."""

from __future__ import annotations

from typing import Any


def complete(line: str) -> list[str]:
    """Completions for the text typed so far on a magic line, e.g. ``"%omgtrain tu"`` -> ``["tune"]``."""
    from .commands import GROUPS, get_group

    words = line.split()
    if not words or not words[0].startswith("%omg"):
        return []
    group = words[0][4:]
    if group not in GROUPS:
        return []
    verbs = get_group(group)
    ends_with_space = line.endswith(" ")
    if len(words) == 1 and ends_with_space or len(words) == 2 and not ends_with_space:
        prefix = "" if len(words) == 1 else words[1]
        return sorted(v for v in verbs if v.startswith(prefix))
    verb = words[1]
    if verb not in verbs:
        return []
    prefix = "" if ends_with_space else words[-1]
    if prefix and not prefix.startswith("-"):
        return []
    parser = verbs[verb].parser("magic")
    flags = [f for action in parser._actions for f in action.option_strings if f.startswith("--")]
    return sorted(f for f in flags if f.startswith(prefix))


def register_completer(ip: Any) -> None:
    """Add a matcher to IPython's completer (``@context_matcher`` API, IPython 8.6+)."""
    try:
        from IPython.core.completer import SimpleCompletion, context_matcher
    except ImportError:  # pragma: no cover - older IPython
        return

    @context_matcher()
    def omg_matcher(context):
        line = context.full_text.split("\n")[context.cursor_line][: context.cursor_position]
        found = complete(line)
        return {"completions": [SimpleCompletion(text=c, type="omg") for c in found],
                "suppress": bool(found)}

    matchers = ip.Completer.custom_matchers
    if not any(getattr(m, "__qualname__", "").endswith("omg_matcher") for m in matchers):
        matchers.append(omg_matcher)
