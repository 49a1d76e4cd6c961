"""The boot watch (render/guest.py boot_watch, render/scripts/host_boot_watch.sh): which
guests get one, what it is rendered with, and what the script does.

The script's waiting logic runs for real here, with bounds of a few seconds: against a
stand-in `virsh` first on PATH (inside the test only) that records every call, a console
log file the test writes or leaves empty, and an SSH port on loopback that answers or not.
The tests marked e2e boot tiny real guests on this machine's libvirt (qemu:///system):
one with no kernel, whose console stays silent like a guest hung in early boot, and one
with a real kernel, whose banner the domain's console <log> (render/domain.py) must put
in the file the watch reads.
"""

from __future__ import annotations

import copy
import dataclasses
import glob
import os
import socket
import subprocess
import threading
import time
from importlib import resources
from pathlib import Path

import pytest
from conftest import example_stacks, program, require_tool, shellcheck, stack_config, topology_of
from lxml import etree

from render.domain import domain_xslt, logged_console
from render.guest import BOOT_OUTPUT_SECONDS, BOOT_SSH_SECONDS, KERNEL_BANNER, boot_watch, boot_watch_script
from render.script import values_of
from spec.names import console_log

SCRIPTS = resources.files("render.scripts")
LIB = SCRIPTS.joinpath("lib.sh").read_text()
FIXTURES = Path(__file__).resolve().parent / "fixtures"
DOMAIN = "g2-test-dev-m1"
URI = "qemu:///system"
RESET_LINE = "(early-boot hang under emulation): reset it once through libvirt"


def watched(stack: str) -> list[tuple[str, object]]:
    topo = topology_of(stack_config(stack))
    return [(g.name, boot_watch(topo, g)) for g in topo.guests]


# --- which guests, with what ----------------------------------------------------------


@pytest.mark.parametrize(
    "stack,expected",
    [
        ("local", {"s1", "m1", "m2", "m3"}),  # qemu:///system, TCG, direct boot
        ("globex-prod", {"iscsi1", "iscsi2", "m1", "m2", "m3", "m4"}),  # qemu+ssh, KVM
        ("acme-prod", set()),  # Xen: libxl logs no console to a file
    ],
)
def test_guests_with_a_console_log_get_a_boot_watch(stack, expected):
    assert {name for name, script in watched(stack) if script is not None} == expected


def test_an_image_that_boots_itself_gets_no_boot_watch():
    # Its own kernel command line may print nothing on ttyS0: a healthy guest would be reset.
    config = copy.deepcopy(stack_config("globex-prod"))
    config["image"] = {k: v for k, v in config["image"].items() if k not in ("kernel", "initrd")}
    config["image"]["boot"] = "bootloader"
    topo = topology_of(config)
    assert all(boot_watch(topo, g) is None for g in topo.guests)


@pytest.mark.parametrize(
    "stack,guest_name,uri",
    [("local", "m1", "qemu:///system"), ("globex-prod", "iscsi2", "qemu:///system")],
)
def test_watch_values(stack, guest_name, uri):
    topo = topology_of(stack_config(stack))
    guest = topo.guest(guest_name)
    values = values_of(boot_watch(topo, guest).create)
    assert values == {
        "STEP": "boot-watch",
        "DOMAIN": guest.domain,
        "URI": uri,  # as seen on the hypervisor, where the watch runs
        "CONSOLE_LOG": f"/var/log/libvirt/qemu/{guest.domain}-console.log",
        "ADDRESS": str(guest.address),
        "SSH_PORT": "22",
        "OUTPUT_SECONDS": str(BOOT_OUTPUT_SECONDS),
        "SSH_SECONDS": str(BOOT_SSH_SECONDS),
        "KERNEL_MARK": KERNEL_BANNER,
    }


@pytest.mark.parametrize("stack", ["local", "globex-prod"])
def test_watch_reads_the_file_the_domain_logs_its_console_to(stack):
    topo = topology_of(stack_config(stack))
    for guest in topo.guests:
        path = values_of(boot_watch(topo, guest).create)["CONSOLE_LOG"]
        assert path == console_log(guest.domain) == logged_console(guest)
        log = etree.XML(domain_xslt(topo, guest).encode()).find(".//log")
        assert log.get("file") == path and log.get("append") == "off"


def test_watch_has_nothing_to_undo():
    script = boot_watch_script(DOMAIN, URI, "/tmp/x.log", "127.0.0.1")
    assert script.delete.endswith(SCRIPTS.joinpath("nothing.sh").read_text())


# --- where the program runs it -----------------------------------------------------------


@pytest.mark.usefixtures("local_key_files")
@pytest.mark.parametrize(
    "stack,command_type",
    [("local", "command:local:Command"), ("globex-prod", "command:remote:Command")],
)
def test_each_guest_is_watched_on_its_hypervisor_after_its_domain_before_ready(stack, command_type):
    prog = program(stack)
    topo = topology_of(stack_config(stack))
    for guest in topo.guests:
        domain = next(d for d in prog.of_type("libvirt:index/domain:Domain") if d.inputs["name"] == guest.domain)
        watch = prog.named(f"-{guest.name}-boot-watch")
        ready = prog.named(f"-{guest.name}-ready")
        assert watch.type == command_type  # this machine, or SSH to the remote hypervisor
        assert values_of(watch.inputs["create"])["DOMAIN"] == guest.domain
        assert prog.depends(watch, domain), f"{watch.name} before its domain"
        assert prog.depends(ready, watch), f"{ready.name} does not wait for {watch.name}"


@pytest.mark.usefixtures("local_key_files")
def test_xen_guests_have_no_boot_watch_in_the_program():
    assert not [r for r in program("acme-prod").commands() if r.name.endswith("-boot-watch")]


# --- shellcheck and golden files --------------------------------------------------------


@pytest.mark.parametrize("stack", example_stacks())
def test_rendered_watches_pass_shellcheck(stack):
    for _, script in watched(stack):
        if script is not None:
            for text in (script.create, script.delete):
                # SC2034: create and delete share one set of values, each uses part of them.
                res = shellcheck(text, "SC2034", "SC2016")
                assert res.returncode == 0, res.stdout


def test_watch_body_passes_shellcheck():
    body = SCRIPTS.joinpath("host_boot_watch.sh").read_text()
    res = shellcheck("#!/bin/bash\n" + LIB + "\n" + body, "SC2154", "SC2153")
    assert res.returncode == 0, res.stdout


@pytest.mark.parametrize("stack", ["local", "globex-prod"])
def test_rendered_watch_matches_golden_files(stack, golden):
    topo = topology_of(stack_config(stack))
    guest = topo.members[0]
    script = boot_watch(topo, topo.guest(guest.name))
    golden(f"boot_watch/{stack}/boot-watch-{guest.name}.sh", script.create)
    golden(f"boot_watch/{stack}/boot-watch-{guest.name}-delete.sh", script.delete)


# --- the script against a stand-in virsh ------------------------------------------------

STUB_VIRSH = r"""#!/bin/bash
# Stand-in virsh for tests: records its arguments, answers domstate from a file, and on
# reset appends the file "on-reset" (if any) to the console log, as a cured boot would.
here=$(dirname "$0")
printf '%s\n' "$*" >>"$here/calls"
while [[ $1 == -* ]]; do [[ $1 == -c ]] && shift; shift; done
case $1 in
  domstate) cat "$here/state" ;;
  reset) [[ -f $here/on-reset ]] && cat "$here/on-reset" >>"$here/console.log"; echo "Domain '$2' was reset" ;;
  *) echo "stub virsh: unexpected $*" >&2; exit 2 ;;
esac
"""

BANNER_LINES = (
    "[    0.000000] Linux version 6.1.0-50-amd64 (debian-kernel@lists.debian.org) #1 SMP\r\n"
    "[    0.000000] Command line: console=ttyS0 root=/dev/vda rw\r\n"
)


class FakeSsh:
    """A loopback port that greets like sshd once started (or never)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.listening = threading.Event()

    def answer(self, after: float = 0.0) -> "FakeSsh":
        def serve():
            time.sleep(after)
            self.sock.listen(8)
            self.listening.set()
            while True:
                try:
                    conn, _ = self.sock.accept()
                except OSError:
                    return
                with conn:
                    conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 stand-in\r\n")

        threading.Thread(target=serve, daemon=True).start()
        if not after:
            self.listening.wait(5)
        return self

    def close(self):
        self.sock.close()


@pytest.fixture
def ssh():
    fake = FakeSsh()  # bound, not listening: connections are refused until answer()
    yield fake
    fake.close()


@dataclasses.dataclass
class Host:
    """A stand-in hypervisor: virsh first on PATH, the domain's state, its console log."""

    dir: Path

    @property
    def log(self) -> Path:
        return self.dir / "console.log"

    def calls(self) -> list[str]:
        path = self.dir / "calls"
        return path.read_text().splitlines() if path.exists() else []

    def resets(self) -> list[str]:
        return [c for c in self.calls() if " reset " in f" {c} "]

    def run(self, port: int, output_seconds: int = 2, ssh_seconds: int = 3, log: Path | None = None):
        script = boot_watch_script(
            DOMAIN, URI, str(log or self.log), "127.0.0.1", ssh_port=port,
            output_seconds=output_seconds, ssh_seconds=ssh_seconds,
        )
        env = {**os.environ, "PATH": f"{self.dir}:{os.environ['PATH']}"}
        started = time.monotonic()
        run = subprocess.run(["bash", "-c", script.create], env=env, capture_output=True, text=True, timeout=60)
        run.seconds = time.monotonic() - started
        return run


@pytest.fixture
def host(tmp_path):
    virsh = tmp_path / "virsh"
    virsh.write_text(STUB_VIRSH)
    virsh.chmod(0o755)
    (tmp_path / "state").write_text("running\n\n")
    (tmp_path / "console.log").write_text("")  # libvirt creates it empty when QEMU starts
    return Host(tmp_path)


def later(seconds: float, action) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), action()), daemon=True)
    thread.start()
    return thread


def test_a_silent_guest_is_reset_once_then_fails_naming_domain_and_log(host, ssh):
    run = host.run(ssh.port)
    assert run.returncode != 0
    assert host.resets() == [f"-q -c {URI} reset {DOMAIN}"]
    assert f"boot watch: {DOMAIN} printed nothing in 2 s {RESET_LINE}" in run.stdout
    (last,) = run.stderr.strip().splitlines()[-1:]
    assert DOMAIN in last and str(host.log) in last and "after one reset" in last
    assert "result:" not in run.stdout


def test_a_guest_whose_kernel_prints_is_not_reset(host, ssh):
    later(1, lambda: host.log.write_text(BANNER_LINES))
    ssh.answer(after=2)
    run = host.run(ssh.port, output_seconds=5, ssh_seconds=10)
    assert run.returncode == 0, run.stderr
    assert host.resets() == []
    assert f"{DOMAIN}'s kernel is running" in run.stdout
    assert run.stdout.rstrip().endswith("result: unchanged")


def test_a_reset_that_cures_the_hang_is_reported_as_a_change(host, ssh):
    (host.dir / "on-reset").write_text(BANNER_LINES)
    ssh.answer(after=3)
    run = host.run(ssh.port, output_seconds=2, ssh_seconds=10)
    assert run.returncode == 0, run.stderr
    assert len(host.resets()) == 1
    assert run.stdout.rstrip().splitlines()[-1].endswith(f"result: changed: boot watch: {DOMAIN} printed nothing in 2 s {RESET_LINE}")


def test_a_guest_already_up_is_a_fast_no_op_even_with_an_empty_log(host, ssh):
    ssh.answer()
    run = host.run(ssh.port, output_seconds=30, ssh_seconds=30)
    assert run.returncode == 0, run.stderr
    assert run.seconds < 5
    assert host.resets() == []
    assert run.stdout.rstrip().endswith("result: unchanged")


def test_a_guest_that_prints_but_never_answers_ssh_fails_naming_domain_and_log(host, ssh):
    host.log.write_text(BANNER_LINES + "[   12.345678] systemd[1]: Starting ssh.service...\r\n")
    run = host.run(ssh.port, output_seconds=5, ssh_seconds=2)
    assert run.returncode != 0
    assert host.resets() == []
    last = run.stderr.strip().splitlines()[-1]
    assert DOMAIN in last and "did not answer SSH" in last and str(host.log) in last
    assert "Starting ssh.service" in run.stderr  # the log's last lines, to read on the spot


def test_a_domain_that_is_not_running_fails_without_a_reset(host, ssh):
    (host.dir / "state").write_text("shut off\n\n")
    run = host.run(ssh.port)
    assert run.returncode != 0
    assert host.resets() == []
    assert f"{DOMAIN} is shut off, not running" in run.stderr and str(host.log) in run.stderr


def test_a_domain_without_a_console_log_is_never_reset(host, ssh):
    ssh.answer(after=2)
    run = host.run(ssh.port, ssh_seconds=10, log=host.dir / "absent.log")
    assert run.returncode == 0, run.stderr
    assert host.resets() == []
    assert "not watching" in run.stdout


def test_a_log_with_output_but_no_banner_says_so(host, ssh):
    host.log.write_text("\x1b[2J\x1b[H")
    run = host.run(ssh.port)
    assert run.returncode != 0
    assert len(host.resets()) == 1
    assert f"{DOMAIN} printed no kernel banner ({KERNEL_BANNER}) in 2 s" in run.stdout


# --- tiny real guests on this machine's libvirt ----------------------------------------


def _virsh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([require_tool("virsh"), "-q", "-c", URI, *args], capture_output=True, text=True, check=check)


def cached_kernel() -> str | None:
    """A kernel already on this machine: a complete builtin image (image/build.sh) or /boot."""
    cache = os.environ.get("GFS2_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gfs2-cluster"
    )
    found = [str(Path(m).parent / "vmlinux") for m in sorted(glob.glob(f"{cache}/images/*/manifest.json"))]
    found += sorted(glob.glob("/boot/vmlinuz-*"))
    return next((k for k in found if os.path.isfile(k)), None)


@pytest.fixture
def real_domain(tmp_path):
    """start(kernel) -> name: a transient TCG domain from the provider's XML under the
    real stylesheet of the local stack's m1, renamed, without disks or network, 256 MiB.
    Destroyed at the end, its console log removed."""
    if _virsh("uri", check=False).returncode != 0:
        pytest.fail(f"libvirt's {URI} does not answer: run make setup (tools/libvirtd.sh)")
    topo = topology_of(stack_config("local"))
    name = f"g2test-bootwatch-{os.getpid()}-{time.monotonic_ns() % 100000}"
    guest = dataclasses.replace(topo.guest("m1"), domain=name)
    started = []

    def start(kernel: str | None) -> str:
        provider = etree.parse(str(FIXTURES / "qemu-member.xml"))
        doc = etree.fromstring(bytes(etree.XSLT(etree.XML(domain_xslt(topo, guest).encode()))(provider)))
        doc.find("name").text = name
        doc.find("memory").text = "256"
        devices, os_ = doc.find("devices"), doc.find("os")
        for element in devices.findall("disk") + devices.findall("interface") + [os_.find("initrd")]:
            element.getparent().remove(element)
        if kernel is None:  # nothing to boot: the console stays silent, as in the hang
            os_.remove(os_.find("kernel"))
            os_.remove(os_.find("cmdline"))
        else:  # no root file system: the kernel prints its banner, then panics and stays up
            os_.find("kernel").text = kernel
            os_.find("cmdline").text = "console=ttyS0"
        path = tmp_path / "domain.xml"
        path.write_bytes(etree.tostring(doc))
        _virsh("create", str(path))
        started.append(name)
        return name

    yield start
    for domain in started:
        _virsh("destroy", domain, check=False)
        Path(console_log(domain)).unlink(missing_ok=True)
        Path(f"/var/log/libvirt/qemu/{domain}.log").unlink(missing_ok=True)


def run_real(name: str, port: int, output_seconds: int, ssh_seconds: int) -> subprocess.CompletedProcess:
    script = boot_watch_script(
        name, URI, console_log(name), "127.0.0.1", ssh_port=port,
        output_seconds=output_seconds, ssh_seconds=ssh_seconds,
    )
    return subprocess.run(["bash", "-c", script.create], capture_output=True, text=True, timeout=120)


@pytest.mark.e2e
def test_real_silent_guest_is_reset_once_through_libvirt_then_fails(real_domain, ssh):
    name = real_domain(None)
    run = run_real(name, ssh.port, output_seconds=4, ssh_seconds=3)
    assert run.returncode != 0, run.stdout
    assert run.stdout.count(RESET_LINE) == 1
    assert f"{name} printed nothing in 4 s" in run.stdout
    last = run.stderr.strip().splitlines()[-1]
    assert name in last and console_log(name) in last and "after one reset" in last
    # libvirt made the file from the console's <log>, and the domain survived the reset.
    assert Path(console_log(name)).exists()
    assert _virsh("domstate", name).stdout.strip() == "running"


@pytest.mark.e2e
def test_real_guest_whose_kernel_prints_is_not_reset(real_domain, ssh):
    kernel = cached_kernel()
    if kernel is None:
        pytest.skip("no kernel on this machine (build the image with image/build.sh)")
    name = real_domain(kernel)
    ssh.answer(after=3)
    run = run_real(name, ssh.port, output_seconds=60, ssh_seconds=30)
    assert run.returncode == 0, run.stdout + run.stderr
    assert RESET_LINE not in run.stdout
    assert f"{name}'s kernel is running" in run.stdout
    assert run.stdout.rstrip().endswith("result: unchanged")
    assert KERNEL_BANNER in Path(console_log(name)).read_text(errors="replace")
