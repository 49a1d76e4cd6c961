"""Applies or removes one stage of this stack's pacemaker configuration, element by
element, with the real cibadmin/crm_attribute/crm_resource (run on a cluster node).

usage: python3 -c "$CIB_TOOL" apply|remove STAGE_XML
       python3 -c "$CIB_TOOL" wait-members COUNT SECONDS
       python3 -c "$CIB_TOOL" wait-running RESOURCE_ID COUNT SECONDS

STAGE_XML: <stage><crm_config><nvpair name= value=/></crm_config><resources>...
</resources><constraints>...</constraints></stage>. An element already in the CIB with
the same canonical XML is left alone, so a second apply changes nothing.
"""

import subprocess
import sys
import time
import xml.etree.ElementTree as ET


def run(*args, check=True):
    return subprocess.run(args, capture_output=True, text=True, check=check)


def canonical(xml):
    return ET.canonicalize(xml_data=xml, strip_text=True)


def xpath(scope, element_id):
    return f"//{scope}/*[@id='{element_id}']"


def current(scope, element_id):
    out = run("cibadmin", "--query", "--xpath", xpath(scope, element_id), check=False)
    return out.stdout if out.returncode == 0 else None


def apply_element(scope, element):
    element_id = element.get("id")
    wanted = ET.tostring(element, encoding="unicode")
    have = current(scope, element_id)
    if have is not None and canonical(have) == canonical(wanted):
        return False
    if have is None:
        run("cibadmin", "--create", "--scope", scope, "--xml-text", wanted)
    else:
        run("cibadmin", "--replace", "--xpath", xpath(scope, element_id), "--xml-text", wanted)
    print(f"{scope}: {'replaced' if have is not None else 'created'} {element_id}")
    return True


def set_property(name, value):
    have = run("crm_attribute", "--type", "crm_config", "--name", name, "--query", "--quiet", check=False)
    if have.returncode == 0 and have.stdout.strip() == value:
        return False
    run("crm_attribute", "--type", "crm_config", "--name", name, "--update", value)
    print(f"property {name}={value}")
    return True


def apply(stage):
    changed = [set_property(p.get("name"), p.get("value")) for p in stage.iterfind("crm_config/nvpair")]
    for scope in ("resources", "constraints"):
        changed += [apply_element(scope, e) for e in stage.iterfind(scope + "/*")]
    if not any(changed):
        print("pacemaker configuration unchanged")


def locate(resource_id):
    out = run("crm_resource", "--locate", "--resource", resource_id, check=False)
    return [line for line in out.stdout.splitlines() if "is running on" in line]


def _started(resource):
    """A primitive in crm_mon's XML that has started and is not failing or mid-operation."""
    return (
        resource.get("role") == "Started"
        and resource.get("active") == "true"
        and resource.get("failed") == "false"
        and resource.get("pending") is None
    )


def crm_mon():
    """The cluster's state as crm_mon's XML (stopped resources too)."""
    return run("crm_mon", "--one-shot", "--inactive", "--output-as=xml", check=False)


def started_on(resource_id):
    """The nodes where RESOURCE_ID (a primitive, or a clone of a primitive or of a group)
    has fully started. crm_resource --locate counts a group as running on a node as soon
    as its first member runs there: dlm up while lvmlockd is still starting."""
    out = crm_mon()
    return started_nodes(out.stdout, resource_id) if out.returncode == 0 else set()


def started_nodes(crm_mon_xml, resource_id):
    """started_on, from the text of `crm_mon --output-as=xml`."""
    top = ET.fromstring(crm_mon_xml).find(f"resources/*[@id='{resource_id}']")
    if top is None:
        return set()
    instances = list(top) if top.tag == "clone" else [top]
    nodes = set()
    for instance in instances:
        primitives = instance.findall("resource") if instance.tag == "group" else [instance]
        if not primitives or not all(_started(p) for p in primitives):
            continue
        where = {n.get("name") for p in primitives for n in p.findall("node")}
        if len(where) == 1:
            nodes |= where
    return nodes


def active_on(crm_mon_xml, node):
    """The ids of the primitives crm_mon's XML shows active on NODE."""
    return {
        r.get("id")
        for r in ET.fromstring(crm_mon_xml).iter("resource")
        if r.get("active") == "true" and any(n.get("name") == node for n in r.findall("node"))
    }


def running_here(node):
    out = crm_mon()
    return active_on(out.stdout, node) if out.returncode == 0 else {"crm_mon failed"}


def wait(what, seconds, done):
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            sys.exit(f"timed out after {seconds} s waiting for {what}")
        time.sleep(2)


REFERENCE_ATTRIBUTES = ("rsc", "with-rsc", "first", "then")


def foreign_references(stage):
    """Constraints in the CIB but not in STAGE that name one of its resources, as
    {constraint id: resource ids}: removing the resource would leave them dangling,
    which the CIB schema refuses after the resource has already been stopped."""
    owned = {e.get("id") for e in stage.iterfind("resources/*")}
    owned |= {e.get("id") for e in stage.iterfind("resources//*[@id]")}
    own_constraints = {e.get("id") for e in stage.iterfind("constraints/*")}
    out = run("cibadmin", "--query", "--scope", "constraints", check=False)
    if out.returncode != 0 or not out.stdout.strip():
        return {}
    found = {}
    for constraint in ET.fromstring(out.stdout):
        if constraint.get("id") in own_constraints:
            continue
        named = {constraint.get(a) for a in REFERENCE_ATTRIBUTES}
        named |= {ref.get("id") for ref in constraint.iterfind(".//resource_ref")}
        if named & owned:
            found[constraint.get("id")] = sorted(n for n in named - owned if n)
    return found


def remove(stage, seconds=300):
    foreign = foreign_references(stage)
    if foreign:
        listed = "; ".join(f"{c} (with {', '.join(others) or 'nothing else'})" for c, others in sorted(foreign.items()))
        sys.exit(
            "refusing to remove this step's pacemaker resources: constraints that are not its own "
            f"still name them: {listed}. Something configured on top of them is still there "
            "(a step left by an interrupted run, or added by hand): finish it with `pulumi up` "
            "and destroy again, or remove what the constraints belong to first. Nothing was changed."
        )
    for element in stage.iterfind("constraints/*"):
        if current("constraints", element.get("id")) is not None:
            run("cibadmin", "--delete", "--xpath", xpath("constraints", element.get("id")))
            print(f"constraints: deleted {element.get('id')}")
    for element in reversed(list(stage.iterfind("resources/*"))):
        element_id = element.get("id")
        if current("resources", element_id) is None:
            continue
        # Stop first, as pcs does: deleting a running resource orphans it on the nodes.
        run("crm_resource", "--resource", element_id, "--meta", "--set-parameter", "target-role",
            "--parameter-value", "Stopped")
        wait(f"{element_id} to stop", seconds, lambda: not locate(element_id))
        run("cibadmin", "--delete", "--xpath", xpath("resources", element_id))
        print(f"resources: stopped and deleted {element_id}")
    for p in stage.iterfind("crm_config/nvpair"):
        run("crm_attribute", "--type", "crm_config", "--name", p.get("name"), "--delete", check=False)


def members():
    out = run("crm_node", "--list", check=False)
    return [line for line in out.stdout.splitlines() if line.split()[-1:] == ["member"]]


def main(argv):
    command = argv[1]
    if command == "apply":
        apply(ET.fromstring(argv[2]))
    elif command == "remove":
        remove(ET.fromstring(argv[2]))
    elif command == "wait-members":
        count, seconds = int(argv[2]), int(argv[3])
        wait(f"{count} cluster members", seconds, lambda: len(members()) >= count)
    elif command == "wait-running":
        resource_id, count, seconds = argv[2], int(argv[3]), int(argv[4])
        wait(f"{resource_id} started on {count} nodes", seconds, lambda: len(started_on(resource_id)) >= count)
    elif command == "wait-stopped-on":
        node, seconds = argv[2], int(argv[3])
        wait(f"every resource to stop on {node}", seconds, lambda: not running_here(node))
    elif command == "wait-started-on":
        node, seconds, clones = argv[2], int(argv[3]), argv[4:]
        wait(f"{', '.join(clones)} started on {node}", seconds, lambda: all(node in started_on(c) for c in clones))
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv)
