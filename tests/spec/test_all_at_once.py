"""Every mistake of a stack in one error: the model's errors and the issues of each rule
between fields that the keys which did validate let it judge, and of the key material;
no rule judges a key that did not validate, nor its default in its place."""

from __future__ import annotations

import dataclasses

import pytest

from bad_cases import ALL, DELETE, FS, PUBLIC, Case, load, memory_reader
from conftest import SSH_KEY
from spec.load import SpecError, load_stack
from spec.vocabulary import PROJECT


def stack(name: str, *changes, **kw) -> Case:
    """Example stack NAME with CHANGES (the Case's own path and words are not used)."""
    return Case("at-once", name, changes, "", "", **kw)


def refused(case: Case) -> SpecError:
    with pytest.raises(SpecError) as e:
        load(case)
    for text in case.never_shown():
        assert text not in str(e.value), f"the error shows {text[:12]}..."
    return e.value


def said(error: SpecError) -> dict[str, list[str]]:
    """The error's messages by key path, each mistake said once."""
    assert len(set(error.issues)) == len(error.issues), error
    out: dict[str, list[str]] = {}
    for issue in error.issues:
        out.setdefault(issue.path, []).append(issue.message)
    return out


def assert_says(error: SpecError, expected: dict[str, str]) -> None:
    """ERROR names exactly the paths of EXPECTED, each with its words."""
    messages = said(error)
    assert sorted(messages) == sorted(expected), error
    for path, words in expected.items():
        assert any(words in m for m in messages[path]), f"{path}: {messages[path]}"


def test_a_model_error_in_members_and_rule_errors_in_fencing_and_ssh():
    error = refused(stack("local", ("members.count", "three"), ("fencing.method", "none"), ("ssh.user", "admin")))
    assert_says(error, {
        "members.count": "digits 0-9",
        "fencing.method": "labWithoutFencing",
        "ssh.user": "use root",
    })


def test_a_model_error_in_network_rule_errors_and_a_wrong_secret():
    error = refused(stack(
        "acme-prod",
        ("network.vlanId", 5000),
        ("management", "pcsd"),
        ("cluster.twoNode", True),
        secrets={"sshPrivateKey": PUBLIC.decode()},
    ))
    assert_says(error, {
        "network.vlanId": "4094",
        "management": "belongs to generation current",
        "cluster.twoNode": "remove twoNode",
        "sshPrivateKey": "holds a public key",
    })


def test_model_errors_in_storage_and_ssh_with_rule_errors_in_fencing_and_image():
    error = refused(stack(
        "globex-prod",
        ("storage.exports[0].sizeGib", 0),
        ("ssh.publicKey", SSH_KEY),
        ("fencing.multicastAddress", "224.0.0.5"),
        ("image.kernel", DELETE),
    ))
    assert_says(error, {
        "storage.exports[0].sizeGib": "1 to 65536",
        "ssh.publicKey": "holds a private key (not shown)",
        "fencing.multicastAddress": "224.0.0.0/24",
        "image.kernel": "needs the kernel and initrd paths",
    })


def test_no_rule_judges_a_key_that_did_not_validate():
    # Two journals would be too few for the default three members, not for the two meant.
    error = refused(stack("local", ("members", {"count": "two"}), (f"{FS}.journals", 2)))
    assert_says(error, {"members.count": "digits 0-9"})


@pytest.mark.parametrize("key", ["members", "fencing"])
def test_a_key_whose_text_is_not_yaml_is_neither_missing_nor_its_default(key):
    """members is required, fencing has a default (which would want a fence key)."""
    local = stack("local")
    raw, secret_keys = local.engine()
    raw[f"{PROJECT}:{key}"] = "{count: 3"
    with pytest.raises(SpecError) as e:
        load_stack(raw, PROJECT, frozenset(secret_keys), memory_reader(local.key_files()))
    assert_says(e.value, {key: "expected structured YAML"})


# A rule error that reads the fencing section only, beside every bad case elsewhere.
FENCING_MISTAKE = ("fencing.labWithoutFencing", True)
ELSEWHERE = [c for c in ALL if not any(p.startswith("fencing") for p in (c.path, *(p for p, _ in c.changes)))]


@pytest.mark.parametrize("case", ELSEWHERE, ids=[c.id for c in ELSEWHERE])
def test_every_bad_case_is_named_beside_a_mistake_in_another_section(case):
    error = refused(dataclasses.replace(case, changes=(*case.changes, FENCING_MISTAKE)))
    messages = said(error)
    assert any(case.words in m for m in messages.get(case.path, [])), f"{case.path}: {error}"
    assert any("remove one" in m for m in messages.get(FENCING_MISTAKE[0], [])), error
