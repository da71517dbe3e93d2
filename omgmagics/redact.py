"""Secrets out of everything the kit shows or writes (core layer, standard library only).

A tracking or storage URI may carry a password (``postgresql://user:pw@host/db``,
``https://user:token@mlflow.example``) or a token in its query (``?token=...``). :func:`redact_uri`
keeps what a reader needs (scheme, user, host, path) and replaces the secret parts with ``***``.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
SECRET_KEYS = re.compile(r"pass|pwd|secret|token|key|auth|signature|credential", re.IGNORECASE)


def redact_uri(uri: object) -> str:
    """`uri` as text with its password and secret query values replaced by ``***``."""
    text = str(uri)
    try:
        parts = urlsplit(text)
    except ValueError:
        return re.sub(r"//([^/:@]*):[^/@]*@", rf"//\1:{MASK}@", text)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, sep, _password = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if sep else f"{user}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if SECRET_KEYS.search(k) else v) for k, v in pairs], safe="*/:")
    if (netloc, query) == (parts.netloc, parts.query):
        return text  # nothing secret; urlunsplit would also drop an empty authority (sqlite:////a)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
