"""Artifact confinement: a registered URI must be a committed object of the store.

The server chooses artifact locations, not the client: a URI is accepted only
if it lies under the configured artifact store's root as given *and* after
every round of percent-decoding (an allow-list, not a deny-list), names a valid
key, exists, and has the SHA-256 the caller gave.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from conveyor.artifacts import _fully_decoded, validate_key
from conveyor.errors import ConfinementError, IntegrityError, NotFoundError

_BLOB = re.compile(r"^blobs/([0-9a-f]{64})$")


def _inside_store(store: Any, uri: str) -> str:
    """The part of ``uri`` below the store root; ConfinementError when outside.

    Allow-list: the URI as given and its fully percent-decoded form must both
    start with the store's root URI, and the rest must be a valid key.
    """
    root = store.uri.rstrip("/") + "/"
    try:
        decoded = _fully_decoded(uri)
    except UnicodeDecodeError:
        decoded = "\x00"
    for form in dict.fromkeys((uri, decoded)):
        if not form.startswith(root):
            raise ConfinementError(
                f"artifact URI {uri!r} lies outside the configured artifact store {store.uri}",
                hint="store the model with the artifact store first and register the URI or "
                "key it returns; the registry never points outside its store",
            )
    return validate_key(uri[len(root) :], what=f"artifact URI {uri!r}")


def verify_artifact(store: Any, uri: str, sha256: str, *, deep: bool = False) -> str:
    """Check that ``uri`` is a committed artifact of ``store`` whose SHA-256 is ``sha256``.

    ``uri`` is a URI the store handed out (``ArtifactInfo.uri``) or a key of the
    store.  Returns the URI to record: for a key, the store's own immutable URI
    of its content.  ``deep`` re-reads the bytes and hashes them.
    """
    if not isinstance(uri, str) or not uri:
        raise ConfinementError("an artifact URI must be a non-empty string")
    locate = getattr(store, "info_for_uri", None)
    if callable(locate):  # a store that maps its URIs itself
        info = locate(uri)
        return _compare(store, info.key, info.uri, info.sha256, sha256, deep)
    if "://" not in uri and not uri.startswith("/"):
        info = _info(store, validate_key(uri), uri)
        return _compare(store, info.key, info.uri, info.sha256, sha256, deep)
    rest = _inside_store(store, uri)
    blob = _BLOB.match(rest)
    if blob is None:
        info = _info(store, rest, uri)
        return _compare(store, info.key, uri, info.sha256, sha256, deep)
    # a content-addressed blob: its name is its digest
    if blob.group(1) != sha256:
        raise IntegrityError(
            f"artifact {uri!r} is the blob of SHA-256 {blob.group(1)}, not {sha256}",
            hint="register the sha256 the artifact store recorded",
        )
    if not store.has_content(uri):
        raise NotFoundError(
            f"artifact {uri!r} is not in the artifact store {store.uri}",
            hint="write the model with the artifact store before registering it",
        )
    if deep:
        store.read_uri(uri, sha256=sha256)  # re-reads and hashes: IntegrityError if changed
    return uri


def _info(store: Any, key: str, uri: str) -> Any:
    try:
        return store.info(key)
    except NotFoundError:
        raise NotFoundError(
            f"artifact {uri!r} is not in the artifact store {store.uri}",
            hint="write the model with the artifact store before registering it",
        ) from None


def _compare(store: Any, key: str, uri: str, recorded: str, sha256: str, deep: bool) -> str:
    if recorded != sha256:
        raise IntegrityError(
            f"artifact {uri!r} has SHA-256 {recorded} in the store, not {sha256}",
            hint="register the sha256 the artifact store recorded for the file",
        )
    if deep:
        digest = hashlib.sha256(store.get_bytes(key)).hexdigest()
        if digest != sha256:
            raise IntegrityError(
                f"artifact {uri!r} hashes to {digest}, not {sha256}",
                hint="the stored bytes changed: restore them from a backup",
            )
    return uri
