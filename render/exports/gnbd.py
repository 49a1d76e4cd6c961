"""GNBD on CentOS 5 (the seed's transport): gnbd_serv + gnbd_export on the storage server,
gnbd_import on every member, each kept across reboots by a SysV init script of ours.

The export is uncached (gnbd_export without -c), the only mode GFS may run on, and
uncached exports need gnbd_serv in cluster mode (not -n): the server is a cman node.
Our init scripts sit in the RHEL 5 boot order between cman (21/79) and clvmd (24/76),
so a fenced member has its GNBD back before clvmd activates the clustered VG.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from render.script import NodeScript, node_script
from spec.topology import ExportPlan, Member, Topology

INIT_DIR = "/etc/init.d"

SERVER_INIT_BODY = r"""
PATH=/sbin:/usr/sbin:/bin:/usr/bin

# `gnbd_export -l` prints "Server[N] : NAME" and then "file : PATH", "cached : no", ...
export_field() {
  gnbd_export -l 2>/dev/null |
    awk -v n="$EXPORT_NAME" -v f="$1" '$1 ~ /^Server\[/ { cur = $3 } cur == n && $1 == f { print $3 }'
}

exported() {
  [ "$(export_field file)" = "$DEVICE" ] && [ "$(export_field cached)" = no ]
}

# Every gnbd command here may leave a daemon behind (gnbd_serv, gnbd_clusterd) holding
# whatever output it was given: /dev/null, so no caller (an SSH session) waits for it.
quiet() { "$@" </dev/null >/dev/null 2>&1; }

start() {
  # Cluster mode (no -n): gnbd_serv exports uncached devices only when cman runs.
  pidof gnbd_serv >/dev/null || quiet gnbd_serv -p "$PORT" || return 1
  local file
  file=$(export_field file)
  if [ -z "$file" ]; then
    # No -c: uncached (gnbd_export's default), so every write reaches the disk.
    quiet gnbd_export -d "$DEVICE" -e "$EXPORT_NAME" || { echo "gnbd_export failed, see syslog" >&2; return 1; }
  elif [ "$file" != "$DEVICE" ]; then
    echo "GNBD $EXPORT_NAME exports $file, not $DEVICE" >&2
    return 1
  fi
  exported || { echo "GNBD $EXPORT_NAME is exported cached" >&2; return 1; }
  touch "$LOCK_FILE"
}

stop() {
  if [ -n "$(export_field file)" ]; then
    quiet gnbd_export -r "$EXPORT_NAME" || return 1
  fi
  # gnbd_serv goes with the server's last export.
  if ! gnbd_export -l 2>/dev/null | grep -q '^Server\['; then
    quiet gnbd_serv -k || true
  fi
  rm -f "$LOCK_FILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop && start ;;
  status)
    if exported; then echo "GNBD $EXPORT_NAME exported from $DEVICE, uncached"; else
      echo "GNBD $EXPORT_NAME not exported"
      exit 3
    fi
    ;;
  *)
    echo "Usage: $0 {start|stop|restart|status}" >&2
    exit 2
    ;;
esac
"""

CLIENT_INIT_BODY = r"""
PATH=/sbin:/usr/sbin:/bin:/usr/bin

# gnbd_import starts gnbd_recvd and gnbd_monitor, which keep the output they were given:
# /dev/null, so no caller (an SSH session) waits for them.
quiet() { "$@" </dev/null >/dev/null 2>&1; }

start() {
  modprobe gnbd || return 1
  local tries=0
  until [ -b "$DEVICE" ]; do
    [ "$tries" -lt 24 ] || { echo "$DEVICE did not appear" >&2; return 1; }
    # Imports every GNBD of the server; those already imported are refused and kept.
    quiet gnbd_import -i "$SERVER_ADDRESS" -p "$PORT" || true
    [ -b "$DEVICE" ] && break
    sleep 5
    tries=$((tries + 1))
  done
  touch "$LOCK_FILE"
}

stop() {
  if [ -b "$DEVICE" ]; then quiet gnbd_import -r "$EXPORT_NAME" || return 1; fi
  rm -f "$LOCK_FILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop && start ;;
  status)
    if [ -b "$DEVICE" ]; then echo "GNBD $EXPORT_NAME imported on $DEVICE"; else
      echo "GNBD $EXPORT_NAME not imported"
      exit 3
    fi
    ;;
  *)
    echo "Usage: $0 {start|stop|restart|status}" >&2
    exit 2
    ;;
esac
"""


def server_init_name(export: ExportPlan) -> str:
    return f"gfs2-gnbd-export-{export.name}"


def client_init_name(export: ExportPlan) -> str:
    return f"gfs2-gnbd-import-{export.name}"


def _init_script(name: str, summary: str, start: int, stop: int, body: str, **values: object) -> str:
    """A chkconfig-managed SysV init script: header, quoted values, then the body."""
    header = [
        "#!/bin/bash",
        "#",
        f"# {name}: {summary} (gfs2-cluster).",
        "#",
        f"# chkconfig: 345 {start} {stop}",
        f"# description: gfs2-cluster: {summary}",
        # No LSB block: RHEL 5's cman script leaves its LSB Provides: empty, so there is
        # no name to depend on; the chkconfig priorities alone give the order.
        "",
        # RHEL's rc runs a K script at shutdown only while this lock exists.
        f"LOCK_FILE={shlex.quote('/var/lock/subsys/' + name)}",
    ]
    header += [f"{key.upper()}={shlex.quote(str(value))}" for key, value in values.items()]
    return "\n".join(header) + "\n" + body


def server_init(export: ExportPlan) -> str:
    # After cman (S21) and qdiskd (S22), stopped before cman (K79).
    return _init_script(
        server_init_name(export),
        f"serves GNBD {export.name} uncached",
        22,
        78,
        SERVER_INIT_BODY,
        export_name=export.name,
        device=export.device,
        port=export.port,
    )


def client_init(export: ExportPlan, device: str) -> str:
    # After cman (S21), before clvmd (S24); stopped after clvmd (K76), before cman (K79).
    return _init_script(
        client_init_name(export),
        f"imports GNBD {export.name}",
        23,
        77,
        CLIENT_INIT_BODY,
        export_name=export.name,
        server_address=export.server_address,
        port=export.port,
        device=device,
    )


@dataclass(frozen=True)
class GnbdProtocol:
    name: str = "gnbd"

    def server(self, topo: Topology, export: ExportPlan) -> NodeScript:
        # One gnbd_serv port per server: spec/rules.py export_ports.
        name = server_init_name(export)
        return node_script(
            f"export-gnbd-{export.name}",
            "export_gnbd.sh",
            "export_gnbd_delete.sh",
            export_name=export.name,
            device=export.device,
            port=export.port,
            init_name=name,
            init_file=f"{INIT_DIR}/{name}",
            init_script=server_init(export),
        )

    def client(self, topo: Topology, export: ExportPlan, member: Member) -> NodeScript:
        device = self.device(topo, export, member)
        name = client_init_name(export)
        return node_script(
            f"import-gnbd-{export.name}",
            "import_gnbd.sh",
            "import_gnbd_delete.sh",
            export_name=export.name,
            server_address=str(export.server_address),
            port=export.port,
            device=device,
            init_name=name,
            init_file=f"{INIT_DIR}/{name}",
            init_script=client_init(export, device),
        )

    def device(self, topo: Topology, export: ExportPlan, member: Member) -> str:
        # The export's name is the device's name on every client (gnbd_export -e).
        return f"/dev/gnbd/{export.name}"

    def resize(self, topo: Topology, export: ExportPlan) -> tuple[str, str]:
        return ("refuse", "gnbd_import fixes an imported device's size when it imports it, "
                "so a running member cannot see a GNBD export grow")


GNBD = GnbdProtocol()
