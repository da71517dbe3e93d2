"""Bundle integrity (core layer): the manifest of sha256 digests, optional HMAC signing, verification.

A bundle is executable code (its handler and project module run in the server), and the manifest
only proves the files match each other: whoever can write the folder can rewrite the manifest too.
**Signing** closes that: with a secret key in ``$OMG_BUNDLE_KEY`` (``openssl rand -hex 32``), packaging
writes ``manifest.sig`` (HMAC-SHA256 of the manifest), and every verification under the key refuses
an unsigned bundle or one whose signature does not match, so a bundle edited and re-manifested
without the key never loads. Without the key, bundles are checked by their digest only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import DataError, UsageError

BUNDLE_FORMAT = "omg-bundle"
MANIFEST = "manifest.json"
SIGNATURE_FILE = "manifest.sig"
SIGNING_KEY_ENV = "OMG_BUNDLE_KEY"


def _files(root: Path) -> list[str]:
    return sorted(rel for rel in (str(p.relative_to(root)).replace(os.sep, "/")
                                  for p in root.rglob("*") if p.is_file())
                  if rel not in (MANIFEST, SIGNATURE_FILE))


def signing_key() -> bytes | None:
    """The bundle signing key from ``$OMG_BUNDLE_KEY``, or None when signing is off."""
    value = os.environ.get(SIGNING_KEY_ENV, "")
    if not value:
        return None
    if len(value) < 16:
        raise UsageError(f"${SIGNING_KEY_ENV} is {len(value)} characters long; a signing key needs "
                         "at least 16 (make one with `openssl rand -hex 32`).")
    return value.encode()


def _hmac(key: bytes, manifest: Path) -> str:
    import hashlib
    import hmac

    return hmac.new(key, manifest.read_bytes(), hashlib.sha256).hexdigest()


def write_manifest(root: Path) -> dict[str, Any]:
    """Write ``manifest.json`` (and ``manifest.sig`` when a signing key is set)."""
    from ..atomic import sha256_file, write_json, write_text

    files = {rel: {"sha256": sha256_file(root / rel), "bytes": (root / rel).stat().st_size}
             for rel in _files(root)}
    manifest = {"format": BUNDLE_FORMAT, "algorithm": "sha256", "files": files}
    write_json(root / MANIFEST, manifest)
    key = signing_key()
    if key is not None:
        write_text(root / SIGNATURE_FILE, _hmac(key, root / MANIFEST) + "\n")
    return manifest


def verify_bundle(path: str | os.PathLike) -> dict[str, Any]:
    """Re-hash every file of a bundle against its manifest.

    Returns
    -------
    dict
        ``ok``, ``checked``, ``changed``, ``missing``, ``unexpected`` (files not in the manifest,
        ``__pycache__`` included: a bundle is immutable), ``digest`` (sha256 of the manifest) and
        ``signature``: ``"valid"``, ``"unchecked"`` (signed, but no key is set here), ``"none"``, or
        under a key ``"missing"`` / ``"invalid"`` (then ``ok`` is False).

    Raises
    ------
    DataError
        When `path` is not a bundle folder or its manifest cannot be read.
    """
    from ..atomic import sha256_file

    root = Path(path)
    mpath = root / MANIFEST
    if not root.is_dir() or not mpath.is_file():
        raise DataError(f"{path} is not a bundle: no {MANIFEST}. Bundles are folders "
                        "models/NAME/VERSION written by `omg deploy package`.")
    try:
        manifest = json.loads(mpath.read_text())
        listed = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        raise DataError(f"{mpath} is not a valid bundle manifest: the bundle was modified or "
                        "damaged. Re-package the model with `omg deploy package`.") from None
    changed, missing = [], []
    for rel, info in listed.items():
        file = root / rel
        if not file.is_file():
            missing.append(rel)
        elif sha256_file(file) != info.get("sha256"):
            changed.append(rel)
    unexpected = [rel for rel in _files(root) if rel not in listed]
    key = signing_key()
    sig_path = root / SIGNATURE_FILE
    if key is None:
        signature = "unchecked" if sig_path.is_file() else "none"
    elif not sig_path.is_file():
        signature = "missing"
    else:
        import hmac

        given = sig_path.read_text(errors="replace").strip()
        signature = "valid" if hmac.compare_digest(given.encode(), _hmac(key, mpath).encode()) \
            else "invalid"
    ok = not (changed or missing or unexpected) and signature not in ("missing", "invalid")
    return {"ok": ok, "checked": len(listed), "changed": changed, "missing": missing,
            "unexpected": unexpected, "digest": sha256_file(mpath), "signature": signature,
            "path": str(root)}


def require_verified(path: str | os.PathLike) -> dict[str, Any]:
    """:func:`verify_bundle`, raising :class:`DataError` (the bundle is not loaded) on a mismatch."""
    result = verify_bundle(path)
    if result["signature"] in ("missing", "invalid"):
        what = ("is not signed" if result["signature"] == "missing" else
                "has a signature that does not match its manifest (it was changed without the key, "
                "or signed with another key)")
        raise DataError(f"Bundle {path} {what}, and ${SIGNING_KEY_ENV} is set, so it was not "
                        "loaded. Re-package the model with `omg deploy package` under the same key.")
    if not result["ok"]:
        parts = []
        for key, what in (("changed", "changed"), ("missing", "missing"), ("unexpected", "added")):
            if result[key]:
                parts.append(f"{what}: {', '.join(result[key][:5])}")
        raise DataError(f"Bundle {path} failed verification ({'; '.join(parts)}): its files do not "
                        "match manifest.json, so it was not loaded. Restore it or re-package the "
                        "model with `omg deploy package`.")
    return result
