"""How a value the user wrote appears in an error message: cut to a readable length, a
password in a URI replaced, and anything that looks like key material not shown at all.

Every message that quotes input goes through shown(); scrub() is the last guard, run on
the finished messages with the secret values the stack really holds. No Pulumi import.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

# Longer quotes are cut: a message names the problem, it does not reprint the stack.
MAX_SHOWN = 60
HIDDEN = "<not shown: it looks like key material>"

KEY_MARKERS = ("-----BEGIN", "PRIVATE KEY", "-----END")
# A password in a URI's user info: scheme://user:PASSWORD@host.
_URI_PASSWORD = re.compile(r"(://[^/?#@:]*):[^/?#@]*@")
# Base64 of random bytes: a long run of the alphabet mixing cases and digits. Paths and
# names have separators (. - _ /) long before 32 characters.
_BASE64_RUN = re.compile(r"[A-Za-z0-9+=]{32,}")


def looks_like_key(text: str) -> bool:
    if any(marker in text for marker in KEY_MARKERS):
        return True
    for run in _BASE64_RUN.findall(text):
        if re.search("[a-z]", run) and re.search("[A-Z]", run) and re.search("[0-9]", run):
            return True
    return False


def redact_uri(text: str) -> str:
    return _URI_PASSWORD.sub(r"\1:***@", text)


def shown(value: Any) -> str:
    """VALUE quoted for a message (repr-style for text)."""
    text = value if isinstance(value, str) else repr(value)
    if looks_like_key(text):
        return HIDDEN
    text = redact_uri(text)
    if len(text) > MAX_SHOWN:
        # Head and tail: the end of a long path is what tells files apart.
        text = text[: MAX_SHOWN * 2 // 3] + "…" + text[-(MAX_SHOWN // 3):]
    return repr(text) if isinstance(value, str) else text


def scrub(message: str, secrets: Iterable[str]) -> str:
    """MESSAGE with every secret value (and every line of a multi-line one) replaced."""
    pieces = set()
    for secret in secrets:
        for piece in [secret, *secret.splitlines()]:
            piece = piece.strip()
            # Short pieces (a PEM "-----END" line's neighbours, "=") are not secrets.
            if len(piece) >= 8 and not piece.startswith("-----"):
                pieces.add(piece)
    for piece in sorted(pieces, key=len, reverse=True):
        message = message.replace(piece, "<secret>")
    return message
