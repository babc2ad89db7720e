"""Hostile and unusual keys: what every store must refuse, and what it must accept.

:data:`TRAVERSAL_CORPUS` holds path-traversal, absolute, URL, control-character,
look-alike and percent-encoded (once, twice, thrice) keys; each must be refused
with a ConfinementError (RELIABILITY.md #3: an allow-list, checked after all
decoding).  :data:`VALID_KEYS` are unusual but allowed and must round-trip.
"""

from __future__ import annotations

from urllib.parse import quote

_PLAIN = [
    # dot segments
    "..",
    "../",
    "../x",
    "../../etc/passwd",
    "a/../../x",
    "a/..",
    "a/../b",
    "./x",
    ".",
    "a/./b",
    "x/.",
    "...",
    ".hidden",
    "a/.tmp-1234abcd",
    "a/.",
    "..a/../..",
    # absolute, empty and doubled separators
    "/etc/passwd",
    "/",
    "//x",
    "///x",
    "a//b",
    "",
    "/a/b",
    "a/b/",
    # backslashes, drives, UNC
    "\\..\\x",
    "..\\x",
    "a\\..\\..\\x",
    "\\\\server\\share\\x",
    "C:\\Windows\\x",
    "C:/Windows/x",
    "c:x",
    "\\etc\\passwd",
    "a\\b",
    # URLs
    "file:///etc/passwd",
    "file:/etc/passwd",
    "file:x",
    "FILE:///x",
    "file://localhost/etc/x",
    "s3://other-bucket/x",
    "http://127.0.0.1/x",
    "https://h/x",
    "gs://b/x",
    "memory://x",
    "data:text/plain,x",
    "a:b",
    # NUL and control characters
    "x\x00",
    "\x00",
    "x\x00/../../y",
    "a/b\x00.txt",
    "a\tb",
    "a\nb",
    "a\rb",
    "\x1b[0m",
    # shell and glob characters, whitespace, home dirs
    "~",
    "~/x",
    "~root/x",
    "$HOME/x",
    "${HOME}",
    "a/*",
    "a/?",
    "a/[x]",
    "a b",
    " x",
    "x ",
    "x;rm",
    "x|y",
    "x>y",
    "'x'",
    '"x"',
    "x#y",
    "x?y=1",
    "a/b/../../..",
    # Unicode look-alikes and invisible characters
    "\uff0e\uff0e/x",
    "\u2024\u2024/x",
    "\u2025/x",
    "..\u2215x",
    "..\u2044x",
    "\uff0fetc\uff0fpasswd",
    "..\uff3cx",
    "x\u202e",
    "\u200bx",
    "x\u200d/..",
    "caf\u00e9",
    "\u212a",
    "a\u0338",
    "\ufeffx",
    "\u00a0x",
    "\u00c0\u00ae\u00c0\u00ae/x",
    "\u0130",
    # too long
    "a" * 201,
    "/".join(["a"] * 33),
    ("a" * 100 + "/") * 11 + "a",
]

_ENCODED_FROM = [
    "../x",
    "..",
    "/etc/passwd",
    "a/../../x",
    "..\\x",
    "x\x00y",
    "file:///etc/passwd",
    "a/b",
]


def _encodings(text: str) -> list[str]:
    once = quote(text, safe="")
    return [
        once,
        once.lower(),
        quote(once, safe=""),  # double-encoded
        quote(quote(once, safe=""), safe=""),  # triple-encoded
        text.replace(".", "%2e"),
        text.replace(".", "%2E").replace("/", "%2F"),
        text.replace("/", "%2f"),
        text.replace(".", "%252e"),
    ]


_EXTRA_ENCODED = [
    "%c0%ae%c0%ae/x",
    "..%c0%afx",
    "%e0%80%ae%e0%80%ae/x",
    "..%255cx",
    "%2e%2e%5cx",
    "%u002e%u002e/x",
    "..%u2215x",
    "%00",
    "x%00y",
    "%2f",
    "a%20b",
    "100%",
    "%",
    "%zz",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%252e%252e%252fx",
    "%25252e%25252e%25252fx",
]


def _corpus() -> list[str]:
    items = list(_PLAIN)
    for text in _ENCODED_FROM:
        items.extend(e for e in _encodings(text) if e != text)
    items.extend(_EXTRA_ENCODED)
    items.extend(
        f"models/{p}"
        for p in [
            "..",
            "../..",
            "%2e%2e",
            "%252e%252e",
            "/x",
            "\\..",
            "\x00",
            "\uff0e\uff0e",
            "./x",
        ]
    )
    return list(dict.fromkeys(items))


#: Keys every store must refuse with ConfinementError (at least 100).
TRAVERSAL_CORPUS: list[str] = _corpus()

#: Unusual keys that are allowed and must round-trip.
VALID_KEYS = [
    "a",
    "a..b",
    "x=1/y=2/part.parquet",
    "a.b.c",
    "_x",
    "v1@2",
    "A-b+c",
    "models/churn/3/model.txt",
    "a/b/c/d/e/f/g",
    "x" * 200,
    "1",
]


__all__ = ["TRAVERSAL_CORPUS", "VALID_KEYS"]
