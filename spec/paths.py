"""Paths a stack gives: files on the machine running Pulumi (keys, the image) and absolute
paths on a hypervisor or guest (kernel, initrd, devices, mount points).

A path holds letters, digits and . _ - + @ / only: no spaces, quotes or shell
characters, even where it reaches no shell today, so that no later script can be
surprised by one. The problems never quote the path (it may be a pasted key).
No Pulumi import.
"""

from __future__ import annotations

import re
from typing import Optional

MAX_PATH = 4096  # PATH_MAX
MAX_NAME = 255  # NAME_MAX, one component
ALLOWED = "letters, digits and . _ - + @ /"
_ALLOWED = re.compile(r"[A-Za-z0-9_.+@/-]")


def _character_problem(text: str) -> Optional[str]:
    for c in text:
        if _ALLOWED.match(c):
            continue
        if c in " \t":
            what = "a space"
        elif ord(c) < 32 or ord(c) == 127:
            what = "a control character (a line break?)"
        elif ord(c) > 127:
            what = "a non-ASCII character"
        else:
            what = f"the character {c!r}"
        return f"holds {what}; a path here has {ALLOWED} only"
    return None


def _shape_problem(text: str) -> Optional[str]:
    if not text:
        return "is empty"
    if len(text) > MAX_PATH:
        return f"is longer than {MAX_PATH} characters"
    if (problem := _character_problem(text)) is not None:
        return problem
    if any(len(part) > MAX_NAME for part in text.split("/")):
        return f"has a component longer than {MAX_NAME} characters"
    if text.endswith("/") and text != "/":
        return "ends with '/': name the file itself"
    return None


def local_path_problem(text: str, absolute: bool = False) -> Optional[str]:
    """Why TEXT is not a file path on the machine running Pulumi (absolute, ~/..., or
    relative to the project folder), or None."""
    if text.startswith("~") and not text.startswith("~/"):
        return "~USER paths are not expanded here; use ~/... or an absolute path"
    body = text[2:] if text.startswith("~/") else text
    if (problem := _shape_problem(body)) is not None:
        return problem
    if absolute and not text.startswith("/"):
        return "must be an absolute path"
    if text in ("/", "~/"):
        return "names a directory: name the file itself"
    return None


def host_file_problem(text: str) -> Optional[str]:
    """host_path_problem, for a path that names a file or device (never "/")."""
    if text == "/":
        return "names the root directory: name the file or device itself"
    return host_path_problem(text)


def host_path_problem(text: str) -> Optional[str]:
    """Why TEXT is not an absolute, normalised path on a hypervisor or guest, or None."""
    if (problem := _shape_problem(text)) is not None:
        return problem
    if not text.startswith("/"):
        return "must be an absolute path (starting with /)"
    parts = text.split("/")[1:]
    if text != "/" and any(p in ("", ".", "..") for p in parts):
        return "must be written plainly: no '//', '.' or '..' in it"
    return None
