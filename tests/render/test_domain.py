"""render/domain.py against the XML terraform-provider-libvirt v0.8.1 really generates.

Each file in fixtures/ is the provider's XML for one kind of guest (the comment at its top
names the provider code it follows). For every example-stack guest a fixture fits, the
stylesheet must give the same document under lxml and under the real xsltproc the
provider runs, the result must be valid domain XML, and libvirt's test driver must define
the qemu ones. The semantic tests say what each concern changes and what it leaves alone.
"""

from __future__ import annotations

import copy
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree

from render.domain import domain_xslt
from spec import build, load_spec
from spec.vocabulary import SECRET_KEYS
from spec.names import console_log
from spec.topology import Guest, Topology
from tests.conftest import example_stacks, require_tool, stack_config

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@dataclass(frozen=True)
class Fixture:
    """A provider XML file and the guests it stands for."""

    file: str
    family: str  # "qemu" (domain type qemu or kvm: libvirt's qemu driver) or "xen"
    role: str
    data_disks: int

    @property
    def path(self) -> Path:
        return FIXTURES / self.file

    def fits(self, guest: Guest) -> bool:
        kind = (_family(guest), guest.role, len(guest.data_disks))
        return kind == (self.family, self.role, self.data_disks)


PROVIDER_XML = (
    Fixture("qemu-member.xml", "qemu", "member", 0),
    Fixture("kvm-member.xml", "qemu", "member", 0),
    Fixture("qemu-server.xml", "qemu", "server", 1),
    Fixture("xen-member.xml", "xen", "member", 0),
    Fixture("xen-server.xml", "xen", "server", 1),
)
BY_FILE = {f.file: f for f in PROVIDER_XML}


def _family(guest: Guest) -> str:
    return "xen" if guest.hypervisor.domain_type == "xen" else "qemu"


def _secrets_in_config(config: dict) -> frozenset[str]:
    """The secret keys a stack must have set: those whose file field it leaves empty."""

    def names_file(field_path: str) -> bool:
        section, key = field_path.split(".")
        return key in (config.get(section) or {})

    return frozenset(key for key, path in SECRET_KEYS.items() if not names_file(path))


def topology(config: dict) -> Topology:
    return build(load_spec(config, secrets_set=_secrets_in_config(config)))


def _cases(families=("qemu", "xen")) -> list:
    cases = []
    for stack in example_stacks():
        topo = topology(stack_config(stack))
        for guest in topo.guests:
            for fixture in PROVIDER_XML:
                if fixture.fits(guest) and fixture.family in families:
                    case_id = f"{stack}-{guest.name}-{fixture.file}"
                    cases.append(pytest.param(stack, guest.name, fixture, id=case_id))
    return cases


# --- running the stylesheet ---------------------------------------------------------


def provider_xml(fixture: Fixture) -> etree._ElementTree:
    return etree.parse(str(fixture.path))


def transform(xslt: str, doc: etree._ElementTree) -> etree._ElementTree:
    return etree.XSLT(etree.XML(xslt.encode()))(doc)


def transform_with_xsltproc(xslt: str, doc_path: Path, workdir: Path) -> etree._ElementTree:
    """As the provider runs it: the trimmed stylesheet in a file, xsltproc, stdout."""
    sheet = workdir / "domain.xsl"
    sheet.write_text(xslt.strip())
    run = subprocess.run(
        [require_tool("xsltproc"), "--nomkdir", "--nonet", "--nowrite", str(sheet), str(doc_path)],
        capture_output=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr.decode()
    return etree.fromstring(run.stdout).getroottree()


def serialized(result: etree._XSLTResultTree) -> etree._ElementTree:
    """The document as lxml writes it under the stylesheet's xsl:output, as xsltproc does."""
    return etree.fromstring(bytes(result)).getroottree()


def c14n(node) -> bytes:
    """Canonical XML of a document or element, blind to indentation between elements."""
    text = etree.tostring(node, method="c14n", with_tail=False)
    return etree.tostring(etree.fromstring(text, etree.XMLParser(remove_blank_text=True)), method="c14n")


def result_for(stack: str, guest_name: str, fixture: Fixture) -> tuple[Guest, etree._ElementTree]:
    topo = topology(stack_config(stack))
    guest = topo.guest(guest_name)
    return guest, transform(domain_xslt(topo, guest), provider_xml(fixture))


def write(doc, path: Path) -> Path:
    path.write_bytes(etree.tostring(doc, xml_declaration=True, encoding="UTF-8"))
    return path


# --- what the results must say --------------------------------------------------------


def data_disk(domain, target: str):
    """The disk that the provider put at ``target`` (renamed xvdX on Xen)."""
    names = (target, "x" + target)
    found = [d for d in domain.iterfind("devices/disk") if d.find("target").get("dev") in names]
    assert len(found) == 1, f"expected one disk at {target}, found {len(found)}"
    return found[0]


def assert_shared_data_disks(domain, guest: Guest) -> None:
    for disk in guest.data_disks:
        element = data_disk(domain, disk.target)
        driver = element.find("driver")
        assert driver.get("type") == "raw", f"{disk.target}: driver type {driver.get('type')}"
        assert driver.get("cache") == "none", f"{disk.target}: cache {driver.get('cache')}"
        assert element.find("shareable") is not None, f"{disk.target}: not shareable"


def root_disk(domain):
    return data_disk(domain, "vda")


# --- lxml and xsltproc, schema, libvirt ----------------------------------------------


@pytest.mark.parametrize("stack,guest_name,fixture", _cases())
def test_lxml_and_xsltproc_give_the_same_document(stack, guest_name, fixture, tmp_path):
    topo = topology(stack_config(stack))
    xslt = domain_xslt(topo, topo.guest(guest_name))
    by_lxml = serialized(transform(xslt, provider_xml(fixture)))
    by_xsltproc = transform_with_xsltproc(xslt, fixture.path, tmp_path)
    assert etree.tostring(by_lxml, method="c14n") == etree.tostring(by_xsltproc, method="c14n")


@pytest.mark.parametrize("stack,guest_name,fixture", _cases())
def test_result_is_valid_domain_xml(stack, guest_name, fixture, tmp_path):
    _, result = result_for(stack, guest_name, fixture)
    run = subprocess.run(
        [require_tool("virt-xml-validate"), str(write(result, tmp_path / "domain.xml")), "domain"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr + run.stdout


def define_on_test_driver(domain, tmp_path: Path) -> subprocess.CompletedProcess:
    """virsh define --validate (schema and libvirt's own parser), then undefine."""
    path = write(domain, tmp_path / "domain.xml")
    name = domain.findtext("name")
    commands = f"define --validate {shlex.quote(str(path))}; undefine {shlex.quote(name)}"
    virsh = [require_tool("virsh"), "-c", "test:///default", commands]
    return subprocess.run(virsh, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("stack,guest_name,fixture", _cases(families=("qemu",)))
def test_qemu_result_defines_on_libvirt_test_driver(stack, guest_name, fixture, tmp_path):
    _, result = result_for(stack, guest_name, fixture)
    run = define_on_test_driver(result, tmp_path)
    assert run.returncode == 0, run.stderr + run.stdout


# --- data disks -----------------------------------------------------------------------

SERVERS = [("local", "s1", BY_FILE["qemu-server.xml"]), ("acme-prod", "gnbd1", BY_FILE["xen-server.xml"])]


@pytest.mark.parametrize("stack,guest_name,fixture", SERVERS)
def test_data_disks_are_raw_uncached_and_shareable(stack, guest_name, fixture):
    guest, result = result_for(stack, guest_name, fixture)
    assert_shared_data_disks(result, guest)


def test_qemu_data_disk_uses_native_aio():
    _, result = result_for("local", "s1", BY_FILE["qemu-server.xml"])
    assert data_disk(result, "vdb").find("driver").get("io") == "native"


@pytest.mark.parametrize("stack,guest_name,fixture", SERVERS)
def test_data_disk_keeps_its_volume(stack, guest_name, fixture):
    guest, result = result_for(stack, guest_name, fixture)
    before = data_disk(provider_xml(fixture), "vdb")
    assert c14n(data_disk(result, "vdb").find("source")) == c14n(before.find("source"))


@pytest.mark.parametrize("stack,guest_name,fixture", SERVERS)
def test_root_disk_keeps_its_driver_and_is_not_shared(stack, guest_name, fixture):
    _, result = result_for(stack, guest_name, fixture)
    before = root_disk(provider_xml(fixture))
    after = root_disk(result)
    assert c14n(after.find("driver")) == c14n(before.find("driver"))
    assert c14n(after.find("source")) == c14n(before.find("source"))
    assert after.find("shareable") is None


def test_qemu_root_disk_is_untouched():
    _, result = result_for("local", "s1", BY_FILE["qemu-server.xml"])
    assert c14n(root_disk(result)) == c14n(root_disk(provider_xml(BY_FILE["qemu-server.xml"])))


def test_member_disks_are_untouched():
    _, result = result_for("local", "m1", BY_FILE["qemu-member.xml"])
    before = provider_xml(BY_FILE["qemu-member.xml"]).findall("devices/disk")
    assert [c14n(d) for d in result.findall("devices/disk")] == [c14n(d) for d in before]


def without_shareable(xslt: str) -> str:
    """The same stylesheet, minus the <shareable/> it writes (a deliberately wrong one)."""
    sheet = etree.XML(xslt.encode())
    for element in sheet.iter("shareable"):
        element.getparent().remove(element)
    return etree.tostring(sheet).decode()


def test_shared_disk_check_catches_a_stylesheet_without_shareable():
    topo = topology(stack_config("local"))
    guest = topo.guest("s1")
    wrong = transform(without_shareable(domain_xslt(topo, guest)), provider_xml(BY_FILE["qemu-server.xml"]))
    with pytest.raises(AssertionError, match="not shareable"):
        assert_shared_data_disks(wrong, guest)


def test_shared_disk_check_catches_the_provider_xml_itself():
    guest = topology(stack_config("local")).guest("s1")
    with pytest.raises(AssertionError, match="cache"):
        assert_shared_data_disks(provider_xml(BY_FILE["qemu-server.xml"]), guest)


# --- cpu weight and cap ---------------------------------------------------------------


def cputune(domain) -> dict[str, str]:
    tune = domain.find("cputune")
    return {} if tune is None else {child.tag: child.text for child in tune}


@pytest.mark.parametrize(
    "stack,guest_name,fixture,expected",
    [
        ("local", "m1", "qemu-member.xml", {"shares": "1024"}),
        ("globex-prod", "m3", "kvm-member.xml", {"shares": "2048"}),
        # libvirt has no domain XML for the Xen credit cap: only the weight is written.
        ("acme-prod", "web2", "xen-member.xml", {"shares": "512"}),
        ("local", "s1", "qemu-server.xml", {}),
    ],
)
def test_cputune_carries_the_stack_numbers(stack, guest_name, fixture, expected):
    _, result = result_for(stack, guest_name, BY_FILE[fixture])
    assert cputune(result) == expected


def capped_local_config() -> dict:
    config = copy.deepcopy(stack_config("local"))
    config["members"] = {**config["members"], "vcpu": 2, "cpuCapPercent": 150}
    return config


def test_cpu_cap_bounds_the_whole_guest_on_qemu(tmp_path):
    topo = topology(capped_local_config())
    result = transform(domain_xslt(topo, topo.guest("m1")), provider_xml(BY_FILE["qemu-member.xml"]))
    assert cputune(result) == {"shares": "1024", "global_period": "100000", "global_quota": "150000"}
    assert define_on_test_driver(result, tmp_path).returncode == 0


# --- network --------------------------------------------------------------------------


def ovs_globex_config(bridge: str = "ovsbr0") -> dict:
    config = copy.deepcopy(stack_config("globex-prod"))
    config["network"] = {**config["network"], "mode": "ovs", "bridge": bridge}
    return config


def on_bridge(doc: etree._ElementTree, bridge: str) -> etree._ElementTree:
    """The provider's XML for ``bridge = <bridge>`` on the interface."""
    doc = copy.deepcopy(doc)
    for source in doc.iterfind("devices/interface/source"):
        source.set("bridge", bridge)
    return doc


def test_ovs_port_is_tagged_with_the_tenant_vlan(tmp_path):
    topo = topology(ovs_globex_config())
    provider = on_bridge(provider_xml(BY_FILE["kvm-member.xml"]), "ovsbr0")
    result = transform(domain_xslt(topo, topo.guest("m1")), provider)
    (interface,) = result.findall("devices/interface")
    assert interface.find("virtualport").get("type") == "openvswitch"
    assert [tag.get("id") for tag in interface.iterfind("vlan/tag")] == ["230"]
    assert interface.find("source").get("bridge") == "ovsbr0"
    assert define_on_test_driver(result, tmp_path).returncode == 0


def test_ovs_leaves_other_bridges_alone():
    topo = topology(ovs_globex_config())
    result = transform(domain_xslt(topo, topo.guest("m1")), provider_xml(BY_FILE["kvm-member.xml"]))
    assert result.find("devices/interface/virtualport") is None
    assert result.find("devices/interface/vlan") is None


@pytest.mark.parametrize(
    "stack,guest_name,fixture",
    [("local", "m1", "qemu-member.xml"), ("globex-prod", "m1", "kvm-member.xml")],
)
def test_isolated_and_vlan_modes_leave_interfaces_untouched(stack, guest_name, fixture):
    _, result = result_for(stack, guest_name, BY_FILE[fixture])
    before = provider_xml(BY_FILE[fixture]).findall("devices/interface")
    assert [c14n(i) for i in result.findall("devices/interface")] == [c14n(i) for i in before]


# --- Xen ------------------------------------------------------------------------------

XEN = [("acme-prod", "web1", BY_FILE["xen-member.xml"]), ("acme-prod", "gnbd1", BY_FILE["xen-server.xml"])]
QEMU = [("local", "m1", BY_FILE["qemu-member.xml"]), ("globex-prod", "iscsi2", BY_FILE["qemu-server.xml"])]


@pytest.mark.parametrize("stack,guest_name,fixture", XEN)
def test_xen_has_no_virtio_channel_or_rng(stack, guest_name, fixture):
    _, result = result_for(stack, guest_name, fixture)
    assert result.find("devices/channel") is None
    assert result.find("devices/rng") is None


@pytest.mark.parametrize("stack,guest_name,fixture", QEMU)
def test_qemu_keeps_the_guest_agent_channel_and_rng(stack, guest_name, fixture):
    _, result = result_for(stack, guest_name, fixture)
    assert result.find("devices/channel/target").get("name") == "org.qemu.guest_agent.0"
    assert result.find("devices/rng/backend").text == "/dev/urandom"


@pytest.mark.parametrize("stack,guest_name,fixture", XEN)
def test_xen_disks_are_xvd_on_the_xen_bus(stack, guest_name, fixture):
    _, result = result_for(stack, guest_name, fixture)
    targets = [(t.get("dev"), t.get("bus")) for t in result.iterfind("devices/disk/target")]
    expected = [("x" + t.get("dev"), "xen") for t in provider_xml(fixture).iterfind("devices/disk/target")]
    assert targets == expected


@pytest.mark.parametrize("stack,guest_name,fixture", XEN)
def test_xen_nic_has_no_virtio_model(stack, guest_name, fixture):
    _, result = result_for(stack, guest_name, fixture)
    (interface,) = result.findall("devices/interface")
    assert interface.find("model") is None
    assert interface.find("source").get("bridge") == "g2br120"


@pytest.mark.parametrize("stack,guest_name,fixture", QEMU)
def test_qemu_keeps_virtio_disks_and_nic(stack, guest_name, fixture):
    _, result = result_for(stack, guest_name, fixture)
    assert {t.get("bus") for t in result.iterfind("devices/disk/target")} == {"virtio"}
    assert result.find("devices/interface/model").get("type") == "virtio"


# --- console --------------------------------------------------------------------------


@pytest.mark.parametrize("stack,guest_name,fixture", [*QEMU, *XEN])
def test_console_stays_the_providers_pty(stack, guest_name, fixture):
    _, result = result_for(stack, guest_name, fixture)
    (console,) = result.findall("devices/console")
    assert console.get("type") == "pty"
    assert c14n(console.find("target")) == c14n(provider_xml(fixture).find("devices/console/target"))


@pytest.mark.parametrize("stack,guest_name,fixture", QEMU)
def test_qemu_console_is_logged_to_its_file_on_the_hypervisor(stack, guest_name, fixture):
    guest, result = result_for(stack, guest_name, fixture)
    (log,) = result.findall("devices/console/log")
    assert log.attrib == {"file": console_log(guest.domain), "append": "off"}
    assert console_log(guest.domain) == f"/var/log/libvirt/qemu/{guest.domain}-console.log"


@pytest.mark.parametrize("stack,guest_name,fixture", XEN)
def test_xen_console_has_no_log(stack, guest_name, fixture):
    _, result = result_for(stack, guest_name, fixture)
    assert result.find("devices/console/log") is None


def test_console_log_is_written_once_over_a_typed_console_with_a_log():
    topo = topology(stack_config("local"))
    guest = topo.guest("m1")
    xslt = domain_xslt(topo, guest)
    twice = transform(xslt, serialized(transform(xslt, provider_xml(BY_FILE["qemu-member.xml"]))))
    (console,) = twice.findall("devices/console")
    assert console.get("type") == "pty"
    assert [log.get("file") for log in console.findall("log")] == [console_log(guest.domain)]


# --- golden files ---------------------------------------------------------------------


@pytest.mark.parametrize("stack", example_stacks())
def test_stylesheets_match_golden_files(stack, golden):
    topo = topology(stack_config(stack))
    for guest in topo.guests:
        golden(f"domain/{stack}/{guest.name}.xsl", domain_xslt(topo, guest))
