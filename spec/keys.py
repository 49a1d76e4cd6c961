"""Key material a stack hands over: is it the kind of key its place needs? Each check
returns a problem that never quotes the key, or None. No Pulumi import.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Optional

from spec.display import KEY_MARKERS

PUBLIC_KEY_TYPES = (
    "ssh-ed25519", "ssh-rsa", "ssh-dss", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
)
# The key travels base64-encoded on the guests' kernel command line (2048 bytes on x86).
PUBLIC_KEY_MAX = 1024
# corosync 3 (knet) reads an authkey of 128 to 4096 bytes and refuses to start otherwise
# (KNET_MIN_KEY_LEN, KNET_MAX_KEY_LEN; corosync-keygen -s).
COROSYNC_KEY_BYTES = (128, 4096)
_PUBLIC_LINE = re.compile(r"^(\S+) ([A-Za-z0-9+/]+={0,2})( .*)?$")
_OPENSSH_BODY = re.compile(r"-----BEGIN OPENSSH PRIVATE KEY-----(.*?)-----END OPENSSH PRIVATE KEY-----", re.S)


def holds_private_key(text: str) -> bool:
    return "PRIVATE KEY" in text or any(marker in text for marker in KEY_MARKERS)


def public_key_problem(text: str) -> Optional[str]:
    """Why TEXT is not one OpenSSH public key line."""
    if holds_private_key(text):
        return (
            "holds a private key (not shown), not a public one: give the private key as ssh.privateKeyFile or the "
            "secret sshPrivateKey, and here the one line of its .pub file"
        )
    lines = text.strip().splitlines()
    if len(text.strip()) > PUBLIC_KEY_MAX:
        return (
            f"is longer than {PUBLIC_KEY_MAX} characters: it reaches the guests base64-encoded on their kernel command "
            "line (2048 bytes); use an ed25519 key or a shorter comment"
        )
    if len(lines) != 1:
        return "must be one line: the single line of a .pub file (TYPE BASE64 [COMMENT])" if lines else "is empty"
    match = _PUBLIC_LINE.match(lines[0].strip())
    if match is None or match.group(1) not in PUBLIC_KEY_TYPES:
        return (
            "is not an OpenSSH public key line (not shown): expected TYPE BASE64 [COMMENT] with TYPE one of "
            + ", ".join(PUBLIC_KEY_TYPES[:3])
            + ", ...; e.g. the content of id_ed25519.pub"
        )
    return None


def _openssh_cipher(text: str) -> Optional[bytes]:
    """The cipher of an OpenSSH-format private key, when its body can be read."""
    match = _OPENSSH_BODY.search(text)
    if match is None:
        return None
    try:
        blob = base64.b64decode("".join(match.group(1).split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    magic = b"openssh-key-v1\0"
    if not blob.startswith(magic) or len(blob) < len(magic) + 4:
        return None
    size = int.from_bytes(blob[len(magic):len(magic) + 4], "big")
    return blob[len(magic) + 4:len(magic) + 4 + size]


def private_key_problem(data: bytes) -> Optional[str]:
    """Why DATA is not an unencrypted SSH private key."""
    if not data.strip():
        return "is empty: give the SSH private key that reaches the guests (e.g. ssh-keygen -t ed25519 -N '' -f FILE)"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "is not text: an SSH private key is PEM text (-----BEGIN ... PRIVATE KEY-----); is it the right file?"
    if public_key_problem(text) is None:
        return "holds a public key: give the private key (the file without .pub)"
    if "-----BEGIN" not in text or "PRIVATE KEY-----" not in text:
        return "does not hold an SSH private key (PEM text from -----BEGIN ... PRIVATE KEY----- to its END line)"
    cipher = _openssh_cipher(text)
    if "ENCRYPTED" in text or (cipher is not None and cipher != b"none"):
        return (
            "is encrypted with a passphrase, which the program cannot type: use a key without one for this "
            "stack (ssh-keygen -p -N '' -f FILE removes it from a copy)"
        )
    return None


def fence_key_problem(data: bytes) -> Optional[str]:
    if not data:
        return "is empty: fence_xvm needs the tenant's key (e.g. head -c 4096 /dev/urandom > FILE)"
    return None


def cluster_key_problem(data: bytes, generation: str) -> Optional[str]:
    low, high = COROSYNC_KEY_BYTES
    if not data:
        return "is empty: give the corosync authkey (corosync-keygen, or head -c 256 /dev/urandom > FILE)"
    if generation == "current" and not low <= len(data) <= high:
        return f"is {len(data)} bytes; corosync reads an authkey of {low} to {high} bytes (corosync-keygen makes 256)"
    return None


def base64_problem(text: str, key: str) -> tuple[Optional[str], bytes]:
    """(problem, the decoded bytes) of the secret config value KEY, set as base64."""
    try:
        return None, base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return f"is not base64 (not shown): set it with base64 -w0 < FILE | pulumi config set --secret {key}", b""
