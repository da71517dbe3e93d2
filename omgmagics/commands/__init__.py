"""The command layer: one registry, one module per magic group.

Modules here only declare options and call the core; they never print (the shells render results).
"""

from ._registry import (  # noqa: F401
    GROUPS,
    REGISTRY,
    Arg,
    Command,
    Context,
    HelpRequested,
    arg,
    command,
    execute,
    get_command,
    get_group,
    group_help,
    load_all,
    planned,
)
