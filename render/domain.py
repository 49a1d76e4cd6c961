"""The XSLT that pulumi-libvirt's Domain applies to the domain XML it generates.

pulumi-libvirt 0.5.4 bridges terraform-provider-libvirt v0.8.1, whose libvirt_domain has
no argument for a shareable or uncached disk, a VLAN tag or cputune, and always adds
devices that libvirt's Xen (libxl) driver cannot start. The provider pipes the XML it
built through ``xsltproc --nonet STYLESHEET DOMAIN.xml`` right before defining the domain
(``xml.xslt``, the provider's transformResourceXML), so each fix is one small group of
XSLT 1.0 templates on top of an identity transform. Pure: no Pulumi import, same input,
same text.
"""

from __future__ import annotations

from typing import Optional

from lxml import etree
from lxml.builder import ElementMaker

from spec.names import console_log
from spec.topology import Guest, Topology

XSL_NS = "http://www.w3.org/1999/XSL/Transform"
# XSLT instructions (xsl:template, xsl:copy, ...).
XSL = ElementMaker(namespace=XSL_NS, nsmap={"xsl": XSL_NS})
# Literal result elements: libvirt domain XML has no namespace.
OUT = ElementMaker()

# CFS enforcement interval in microseconds (the kernel's default).
CFS_PERIOD_US = 100_000


def domain_xslt(topo: Topology, guest: Guest) -> str:
    """The stylesheet for the libvirt domain of ``guest`` (the Domain's ``xml.xslt``)."""
    templates = [
        *_identity(),
        *_shared_data_disks(guest),
        *_cpu_tuning(guest),
        *_ovs_port(topo, guest),
        *_xen_compatibility(guest),
        *_console(guest),
    ]
    stylesheet = XSL.stylesheet(
        XSL.output(method="xml", indent="yes", encoding="UTF-8"),
        XSL("strip-space", elements="*"),
        *templates,
        version="1.0",
    )
    return etree.tostring(stylesheet, pretty_print=True, xml_declaration=True, encoding="UTF-8").decode()


def _identity() -> list:
    """Copy everything no other template claims, so the provider's XML passes unchanged."""
    return [_template("@*|node()", XSL.copy(_apply("@*|node()")))]


def _shared_data_disks(guest: Guest) -> list:
    """A storage server's data disks: raw, no host page cache, shareable.

    The provider derives ``<driver name="qemu" type="qcow2|raw"/>`` from the volume format
    and has no cache or shareable argument. The disk under a cluster file system must not
    have the host's page cache between the guest and the storage (cache='none'), and only
    a raw image can be opened by two writers (qcow2 metadata cannot). The root disk (vda)
    is not matched.
    """
    if not guest.data_disks:
        return []
    targets = " or ".join(f"target/@dev={_literal(disk.target)}" for disk in guest.data_disks)
    return [
        etree.Comment(" data disks of a storage server: raw, cache=none, shareable "),
        _template(
            f"/domain/devices/disk[{targets}]",
            XSL.copy(
                _apply("@*"),
                _data_disk_driver(guest),
                _apply("node()[not(self::driver or self::shareable)]"),
                OUT.shareable(),
            ),
        ),
    ]


def _data_disk_driver(guest: Guest) -> etree._Element:
    """qemu: host-native AIO, which QEMU accepts only with direct I/O (cache='none').
    Xen: libxl's libxlMakeDisk reads the driver name and format only; "qemu" is its qdisk
    backend, which serves the provider's file volumes ("phy" would need a block device)."""
    if _is_xen(guest):
        return OUT.driver(name="qemu", type="raw", cache="none")
    return OUT.driver(name="qemu", type="raw", cache="none", io="native")


def _cpu_tuning(guest: Guest) -> list:
    """CPU weight and cap from the guest size, in a ``<cputune>`` after ``<vcpu>``.

    shares is the relative weight; libxl turns it into the Xen credit weight
    (libxlMakeDomBuildInfo: ``sched_params.weight = cputune.shares``). The cap is "percent
    of one CPU" for the whole guest: on qemu/kvm that is global_period/global_quota, as
    the per-vCPU period/quota would allow each vCPU the full cap. libvirt has no domain
    XML for the Xen credit cap (only the live scheduler parameter ``cap``, virsh
    schedinfo), and libxl ignores quotas, so on Xen the cap is left out.
    """
    size = guest.size
    tune = []
    if size.cpu_shares is not None:
        tune.append(OUT.shares(str(size.cpu_shares)))
    if size.cpu_cap_percent is not None and not _is_xen(guest):
        tune.append(OUT.global_period(str(CFS_PERIOD_US)))
        tune.append(OUT.global_quota(str(size.cpu_cap_percent * CFS_PERIOD_US // 100)))
    if not tune:
        return []
    note = " cpu weight and cap "
    if size.cpu_cap_percent is not None and _is_xen(guest):
        note = f" cpu weight; the Xen credit cap ({size.cpu_cap_percent}%) has no domain XML "
    return [
        etree.Comment(note),
        _template("/domain/vcpu", XSL.copy(_apply("@*|node()")), OUT.cputune(*tune)),
    ]


def _ovs_port(topo: Topology, guest: Guest) -> list:
    """network.mode ovs: the guest's port on the existing Open vSwitch bridge, tagged with
    the tenant's VLAN. The provider's bridge interface is a plain Linux bridge port; in
    modes isolated and vlan the bridge is the tenant's own and needs no tag."""
    net = topo.spec.network
    if net.mode != "ovs":
        return []
    port = f"/domain/devices/interface[@type='bridge'][source/@bridge={_literal(topo.bridge)}]"
    return [
        etree.Comment(f" port on the Open vSwitch bridge, tagged VLAN {net.vlan_id} "),
        _template(
            port,
            XSL.copy(
                _apply("@*|node()[not(self::virtualport or self::vlan)]"),
                OUT.virtualport(type="openvswitch"),
                OUT.vlan(OUT.tag(id=str(net.vlan_id))),
            ),
        ),
    ]


def _xen_compatibility(guest: Guest) -> list:
    """What the provider always writes and libvirt's libxl driver cannot start.

    - the qemu guest-agent ``<channel>`` (target virtio): libxlMakeChannel fails with
      "channel target type not supported" for anything but target type xen;
    - the virtio ``<rng>`` (domain_def.go newDomainDef): libxl has no RNG device, so it
      would only stand in the config without reaching the guest;
    - disk targets vdX on bus virtio (disk_def.go newDefDisk): libxl accepts only xvdX,
      hdX, sdX or dNpM as the virtual device (libxl__device_disk_dev_number), so they
      become xvdX on bus xen;
    - ``<model type='virtio'/>`` on the interface: libxl hands the model string verbatim to
      QEMU as ``-device virtio,...`` (libxl_dm.c), not a QEMU device; without a model libxl
      gives an HVM guest its default emulated NIC plus the PV vif.
    """
    if not _is_xen(guest):
        return []
    return [
        etree.Comment(" Xen (libxl): no virtio channel, rng or NIC model; xvd disks "),
        _template("/domain/devices/channel[target/@type='virtio']"),
        _template("/domain/devices/rng"),
        _template("/domain/devices/interface/model[@type='virtio']"),
        _template(
            "/domain/devices/disk/target[@bus='virtio']",
            OUT.target(_apply("@*[not(name()='dev' or name()='bus')]"), dev="x{@dev}", bus="xen"),
        ),
    ]


def logged_console(guest: Guest) -> Optional[str]:
    """The file the guest's serial console is logged to on its hypervisor, or None.

    Only libvirt's QEMU driver (domain types qemu and kvm) is relied on to write a
    character device's ``<log>`` (through virtlogd, or QEMU's own chardev logfile): a
    Xen guest's console belongs to xenconsoled, and the test driver runs nothing. The
    path is spec.names.console_log.
    """
    if guest.hypervisor.driver != "qemu":
        return None
    return console_log(guest.domain)


def _console(guest: Guest) -> list:
    """The provider's serial console, with its type said and its output kept in a file.

    The provider writes a pty console without ``type`` (libvirtxml omits it when the
    console has no source path). libvirt reads a missing type as pty, but the domain
    schema requires the attribute; writing it keeps the domain the same and lets
    virt-xml-validate check the result. Any console the provider emits stays otherwise.

    On the QEMU driver the console also gets ``<log file=... append='off'/>`` (a child of
    ``<console>``/``<serial>``, beside ``<target>``, in domaincommon.rng's qemucdevSrcDef):
    everything the guest writes to ttyS0 lands in the file whether or not anyone is
    attached to the pty, and each start of QEMU begins it afresh (a ``virsh reset`` does
    not, so a reset boot follows the hung one). The provider writes no ``<serial>``;
    libvirt makes serial0 from this console (virDomainDefAddConsoleCompat), log
    included. That file is how the boot watch (render/guest.py) sees a guest's kernel
    start, and where a guest that does not come up can be read.
    """
    log = logged_console(guest)
    if log is None:
        return [
            etree.Comment(" the provider's console is a pty: say so "),
            _template(
                "/domain/devices/console[not(@type)]",
                XSL.copy(XSL.attribute("pty", name="type"), _apply("@*|node()")),
            ),
        ]
    return [
        etree.Comment(" the provider's console is a pty: say so, and log it to a file on the hypervisor "),
        _template(
            "/domain/devices/console[target/@type='serial' or not(target)]",
            XSL.copy(
                XSL("if", XSL.attribute("pty", name="type"), test="not(@type)"),
                _apply("@*|node()[not(self::log)]"),
                OUT.log(file=log, append="off"),
            ),
        ),
    ]


def _template(match: str, *body) -> etree._Element:
    return XSL.template(*body, match=match)


def _apply(select: str) -> etree._Element:
    return XSL("apply-templates", select=select)


def _literal(value: str) -> str:
    """An XPath 1.0 string literal; values are validated names, which never hold a quote."""
    if "'" in value:
        raise ValueError(f"cannot match {value!r} in the domain XML")
    return f"'{value}'"


def _is_xen(guest: Guest) -> bool:
    return guest.hypervisor.domain_type == "xen"
