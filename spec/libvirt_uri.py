"""libvirt connection URIs, as far as this program and its libvirt provider take them.

pulumi-libvirt 0.5.4 bridges terraform-provider-libvirt 0.8.1, whose pure-Go client
dials the transport itself (libvirt/uri/connection_uri.go): unix, ssh, tcp and tls, the
transport after the "+" or, without one, tls when the URI names a host and unix when it
does not; libssh, libssh2 and ext are "not implemented". Of the query options it reads
socket (unix, ssh), keyfile, knownhosts, known_hosts_verify and sshauth (ssh), pkipath
and no_verify (tls), and name; it silently ignores every other one.

Refused here, each with its reason: tcp (no encryption and nothing proves the host is
the hypervisor), anything that turns host verification off (no_verify in any form: the
ssh transport skips the host key check when the option is merely present, even as
no_verify=0; known_hosts_verify=ignore), a password in the URI and sshauth=ssh-password
(the password would sit in the stack file and the provider's state), name= (libvirt
would open another driver than the scheme says), options the provider ignores, host
names that are not host names, and an SSH port other than 22 (the program's own SSH to
the hypervisor, for the host-side steps, connects on 22). No Pulumi import.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Optional
from urllib.parse import parse_qsl, urlsplit

from spec.paths import local_path_problem

DRIVERS = ("qemu", "xen")
# Only the privileged daemon can make bridges and read the guests' consoles.
PATHS = {"qemu": ("/system",), "xen": ("/", "/system", "")}
TRANSPORTS = ("unix", "ssh", "tls")
OPTIONS = {
    "unix": ("socket",),
    "ssh": ("keyfile", "knownhosts", "known_hosts_verify", "sshauth", "socket"),
    "tls": ("pkipath",),
}
SSH_AUTH = ("agent", "privkey")
SSH_PORT = 22
MAX_LENGTH = 255

EXAMPLES = "qemu:///system, qemu+ssh://root@kvm1.example.net/system, xen+ssh://root@dom0.example.net/"
_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_SAFE = re.compile(r"^[A-Za-z0-9+:/@.\[\]?&=,_~%#-]+$")


@dataclass(frozen=True)
class LibvirtUri:
    driver: str
    transport: str
    user: Optional[str]
    host: Optional[str]


def parse(uri: str) -> LibvirtUri:
    """The parts of a URI that problems() accepted."""
    parts = urlsplit(uri)
    driver, _, transport = parts.scheme.partition("+")
    host = parts.hostname or None
    return LibvirtUri(driver, transport or ("tls" if host else "unix"), parts.username, host)


def host_name_problem(host: str) -> Optional[str]:
    """Why HOST is not a host name or IP address, or None."""
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return f"{host!r} is neither a host name nor an IPv4 address"
        return None
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return "is not a valid IPv6 address"
        return None
    labels = host.rstrip(".").split(".")
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        return "is not a host name (letters, digits and '-' in dot-separated labels of at most 63)"
    return None


def problems(uri: str) -> list[str]:
    """What is wrong with URI for this program (empty when nothing), never quoting a password."""
    if len(uri) > MAX_LENGTH:
        return [f"is longer than {MAX_LENGTH} characters"]
    if not _SAFE.match(uri):
        return ["holds spaces, quotes or other characters a libvirt URI does not have; e.g. " + EXAMPLES]
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return [f"is not a URI: its host or port cannot be read; e.g. {EXAMPLES}"]
    driver, plus, transport = parts.scheme.partition("+")
    if driver not in DRIVERS:
        return [f"driver {driver or '(none)'!r} is not one this program runs guests on: {', '.join(DRIVERS)}; e.g. {EXAMPLES}"]
    if plus and transport not in TRANSPORTS:
        return [_transport_problem(transport)]
    transport = transport or ("tls" if parts.hostname else "unix")
    out = []
    if parts.password is not None:
        out.append("holds a password (not shown): the provider would keep it in plain text; remove ':PASSWORD' and use an SSH key")
    host = parts.hostname
    if transport == "unix" and parts.netloc:
        out.append(f"{parts.scheme}:// with a host reaches this machine's socket, not the host; use {driver}+ssh://root@HOST{PATHS[driver][0]}")
    elif transport != "unix":
        if not host:
            out.append(f"transport {transport} needs a host: {driver}+{transport}://root@HOST{PATHS[driver][0]}")
        elif (problem := host_name_problem(host)) is not None:
            out.append(f"host {problem}")
    if parts.username is not None and not _USER.match(parts.username):
        out.append("user must be a login name (lowercase letters, digits, '_' and '-', at most 32)")
    if transport == "ssh" and port not in (None, SSH_PORT):
        out.append(f"SSH port {port}: the program's own SSH to the hypervisor uses port {SSH_PORT}; remove ':{port}'")
    if parts.path not in PATHS[driver]:
        allowed = " or ".join(repr(p) for p in PATHS[driver] if p)
        out.append(f"path {parts.path or '(none)'!r}: the {driver} driver is reached here at {allowed} (the privileged daemon)")
    if parts.fragment:
        out.append("has a '#fragment', which libvirt URIs do not have")
    out += _option_problems(transport, parts.query)
    return out


def _transport_problem(transport: str) -> str:
    if transport == "tcp":
        return (
            "transport tcp is unencrypted and nothing proves the host is the hypervisor; "
            "use +ssh (e.g. qemu+ssh://root@HOST/system) or +tls"
        )
    return (
        f"transport {transport!r} is not implemented by the libvirt provider (terraform-provider-libvirt 0.8.1); "
        f"it supports {', '.join(TRANSPORTS)} (and tcp, refused here)"
    )


def _option_problems(transport: str, query: str) -> list[str]:
    out = []
    options = parse_qsl(query, keep_blank_values=True)
    allowed = OPTIONS[transport]
    for name, value in options:
        if name == "no_verify":
            out.append(
                "option no_verify turns off the host check (the provider's ssh transport skips it "
                "whenever the option is present, even no_verify=0); remove it and add the host's key to known_hosts"
            )
        elif name == "known_hosts_verify" and value == "ignore":
            out.append("option known_hosts_verify=ignore turns the host key check off; remove it and add the host's key to known_hosts")
        elif name == "known_hosts_verify" and value != "normal":
            out.append(
                f"option known_hosts_verify={value[:20]!r}: the provider implements only ignore (refused here) "
                "and the default, normal; remove it"
            )
        elif name == "sshauth" and transport == "ssh":
            methods = value.split(",")
            if "ssh-password" in methods:
                out.append("option sshauth=ssh-password needs a password in the URI; use agent or privkey (SSH keys)")
            elif not all(m in SSH_AUTH for m in methods):
                out.append(f"option sshauth takes {', '.join(SSH_AUTH)} (comma-separated)")
        elif name == "name":
            out.append("option name makes libvirt open another driver than the URI's scheme says; remove it")
        elif name not in allowed:
            what = ", ".join(allowed) if allowed else "none"
            out.append(f"option {name[:20]!r} is ignored by the libvirt provider for transport {transport}; it reads: {what}")
        elif name in ("keyfile", "knownhosts", "socket", "pkipath"):
            problem = local_path_problem(value, absolute=name == "socket")
            if problem is not None:
                out.append(f"option {name}: {problem}")
    return out
