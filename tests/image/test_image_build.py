"""image/build.sh and image/boot-test.sh: fast checks (no mirror, no root, no guests),
plus e2e runs (-m e2e: the Debian mirror, a cached or fresh image, one TCG guest)."""

import gzip
import lzma
import os
import pathlib
import shutil
import subprocess
import time

import pytest

IMAGE = pathlib.Path(__file__).resolve().parents[2] / "image"
SCRIPTS = [IMAGE / "build.sh", IMAGE / "boot-test.sh", IMAGE / "overlay/usr/local/sbin/gfs2-boot-config"]

OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\n'


def run_build(*args, env=None, cwd=None, script=IMAGE / "build.sh"):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GFS2_")}
    full_env.update(env or {})
    return subprocess.run(
        [str(script), *args], env=full_env, cwd=cwd, capture_output=True, text=True, check=False
    )


def apt_tree(tmp_path, sources_list="", parts=None):
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list").write_text(sources_list)
    for name, text in (parts or {}).items():
        (etc / "sources.list.d" / name).write_text(text)
    osr = tmp_path / "os-release"
    osr.write_text(OS_RELEASE)
    return {"GFS2_APT_ETC": str(etc), "GFS2_OS_RELEASE": str(osr)}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck_clean(script):
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is not installed: run make setup")
    res = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout


def test_mirror_from_deb822_skips_third_party_and_other_suites(tmp_path):
    env = apt_tree(
        tmp_path,
        sources_list="deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n",
        parts={
            "debian.sources": (
                "Types: deb\n"
                "# a comment inside the stanza\n"
                "URIs: http://off.example/debian\n"
                "Suites: bookworm\n"
                "Components: main\n"
                "Enabled: no\n"
                "\n"
                "Types: deb-src deb\n"
                "URIs: http://mirror.example/debian/\n"
                "Suites: bookworm bookworm-updates\n"
                "Components: main contrib\n"
                "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
            ),
            "nodesource.sources": (
                "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\n"
                "Components: main\n"
            ),
            "php.list": "deb https://packages.example.org/php bookworm main\n",
        },
    )
    res = run_build("--print-mirror", env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "http://mirror.example/debian bookworm\n"


def test_mirror_from_one_line_sources_list_with_options(tmp_path):
    env = apt_tree(
        tmp_path,
        sources_list=(
            "# deb http://commented.example/debian bookworm main\n"
            "deb http://security.example/debian-security bookworm-security main\n"
            "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
            "http://ftp.example.org/pub/linux/distros bookworm contrib main\n"
        ),
        parts={"later.list": "deb http://later.example/debian bookworm main\n"},
    )
    res = run_build("--print-mirror", env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "http://ftp.example.org/pub/linux/distros bookworm\n"


def test_mirror_override_and_missing_mirror(tmp_path):
    env = apt_tree(tmp_path, sources_list="deb http://x.example/debian trixie main\n")
    res = run_build("--print-mirror", env=env)
    assert res.returncode != 0
    assert "no Debian mirror for suite 'bookworm'" in res.stderr
    env["GFS2_DEBIAN_MIRROR"] = "http://override.example/debian/"
    res = run_build("--print-mirror", env=env)
    assert res.stdout == "http://override.example/debian bookworm\n"


def test_recipe_hash_tracks_content_not_mtime(tmp_path):
    copy = tmp_path / "image"
    shutil.copytree(IMAGE, copy)
    script = copy / "build.sh"

    def hash_(**env):
        res = run_build("--print-hash", env=env, script=script)
        assert res.returncode == 0, res.stderr
        return res.stdout.strip()

    base = hash_()
    assert len(base) == 16 and int(base, 16) >= 0
    assert hash_() == base
    os.utime(copy / "packages.txt", (0, 0))
    assert hash_() == base, "mtime must not matter"
    unit = copy / "overlay/etc/modules-load.d/gfs2-cluster.conf"
    unit.write_text(unit.read_text() + "# edited\n")
    edited = hash_()
    assert edited != base
    (copy / "overlay/etc/new-file").write_text("")
    assert hash_() != edited
    assert hash_(GFS2_DEBIAN_SUITE="trixie") != hash_()


def test_cached_image_is_reported_fast(tmp_path):
    env = {"GFS2_CACHE_DIR": str(tmp_path / "cache")}
    out = run_build("--print-dir", env=env).stdout.strip()
    assert out.startswith(str(tmp_path / "cache/images/"))
    pathlib.Path(out).mkdir(parents=True)
    pathlib.Path(out, "manifest.json").write_text("{}\n")
    start = time.monotonic()
    res = run_build(env=env)
    took = time.monotonic() - start
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"image: cached {out}\n"
    assert took < 1.0


def test_incomplete_image_dir_is_not_cached(tmp_path):
    # Without manifest.json a dir is not an image: build.sh goes on to build, and here
    # stops at once at the package check (a mirror that does not exist; as non-root it
    # refuses even earlier).
    env = {"GFS2_CACHE_DIR": str(tmp_path / "cache"), "GFS2_DEBIAN_MIRROR": f"file://{tmp_path}/no-mirror"}
    out = pathlib.Path(run_build("--print-dir", env=env).stdout.strip())
    out.mkdir(parents=True)
    (out / "disk.qcow2").write_text("half")
    res = run_build(env=env)
    assert res.returncode != 0
    assert "image: cached" not in res.stdout
    assert "cannot read the package index" in res.stderr or "needs root" in res.stderr
    assert not (out / "manifest.json").exists()
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".build-")) == []


def test_packages_list_parsing():
    res = subprocess.run(
        ["bash", "-c", 'source "$1"; packages', "_", str(IMAGE / "build.sh")],
        capture_output=True, text=True, check=True,
    )
    names = res.stdout.split()
    assert names == sorted(set(names), key=names.index), "duplicates in packages.txt"
    for want in ["linux-image-amd64", "systemd-sysv", "corosync", "pacemaker", "pcs",
                 "dlm-controld", "gfs2-utils", "lvm2-lockd", "openssh-server"]:
        assert want in names
    assert not any(n.startswith("#") or " " in n for n in names)


ELF = b"\x7fELF" + bytes(range(256)) * 64


@pytest.mark.parametrize("codec", ["gzip", "xz", "zstd"])
def test_extract_vmlinux_finds_payload(tmp_path, codec):
    if codec == "gzip":
        payload = gzip.compress(ELF)
    elif codec == "xz":
        payload = lzma.compress(ELF, format=lzma.FORMAT_XZ)
    else:
        if shutil.which("zstd") is None:
            pytest.skip("zstd not installed")
        payload = subprocess.run(["zstd", "-c"], input=ELF, capture_output=True, check=True).stdout
    # Decoy magic bytes before the real payload, trailing size word after it (like a bzImage).
    img = tmp_path / "vmlinuz"
    img.write_bytes(b"MZ" + b"\x1f\x8b\x08junk" + b"\xfd7zXZ\x00junk" + os.urandom(512) + payload + b"\x00\x10\x00\x00")
    out = tmp_path / "vmlinux"
    res = subprocess.run(
        ["bash", "-c", 'source "$1"; extract_vmlinux "$2" "$3"', "_", str(IMAGE / "build.sh"),
         str(img), str(out)],
        capture_output=True, text=True, check=False,
    )
    assert res.returncode == 0, res.stderr
    assert out.read_bytes() == ELF


@pytest.mark.e2e
def test_missing_package_is_named_before_the_build(tmp_path):
    copy = tmp_path / "image"
    shutil.copytree(IMAGE, copy)
    with open(copy / "packages.txt", "a") as f:
        f.write("no-such-package-gfs2  # deliberately missing\n")
    res = run_build("--check-packages", script=copy / "build.sh")
    assert res.returncode != 0
    assert "no-such-package-gfs2" in res.stderr and "bookworm main" in res.stderr


@pytest.mark.e2e
def test_boot_guest_and_ssh():
    if os.geteuid() != 0:
        pytest.skip("needs root for libvirt qemu:///system")
    res = subprocess.run(
        [str(IMAGE / "boot-test.sh")], capture_output=True, text=True, timeout=3600, check=False
    )
    print(res.stdout)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert "PASS" in lines
    assert lines[-1] == "cleanup: domain, network, overlay and key removed"
