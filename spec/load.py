"""Stack config (a plain mapping) to a validated StackSpec, or one error naming every bad key.

load_stack() is the whole way in, as the program takes it: the engine's config strings,
the secret config values, and the key files the stack names, all checked before any
resource exists. Every message names its key path and never quotes key material.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Optional

from pydantic import BaseModel, ValidationError

from spec import keys
from spec.display import looks_like_key, scrub, shown
from spec.model import Meaning, NotValidated, PartialStackSpec, StackSpec, config_keys
from spec.rules import Context, Issue, check, secret_files
from spec.vocabulary import SECRET_KEYS


class SpecError(Exception):
    """The stack config is wrong; raised before any resource is registered."""

    def __init__(self, issues: list[Issue]):
        self.issues = issues
        super().__init__("invalid stack config:\n" + "\n".join(f"  {i}" for i in issues))

    @property
    def paths(self) -> list[str]:
        return [i.path for i in self.issues]


def _key_name(part: Any) -> str:
    """A key the user wrote, as it appears in a path."""
    text = str(part)
    if looks_like_key(text):
        return "<key not shown>"
    return text if len(text) <= 40 else text[:39] + "…"


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{_key_name(part)}" if out else _key_name(part))
    return out


def _field_at(loc: tuple, root: type[BaseModel] = StackSpec) -> Any:
    """The field the error location points at, or None."""
    model, name = _model_at(loc, root), next((p for p in reversed(loc) if isinstance(p, str)), None)
    if model is None or name is None:
        return None
    return next((f for n, f in model.model_fields.items() if (f.alias or n) == name), None)


def _model_at(loc: tuple, root: type[BaseModel] = StackSpec) -> type[BaseModel] | None:
    """The model whose field the error location points into (for listing allowed keys)."""
    model: Any = root
    parts = list(loc)
    while parts and isinstance(parts[-1], int):
        parts.pop()
    for part in parts[:-1]:
        if isinstance(part, int):
            continue
        by_alias = {f.alias or n: f for n, f in model.model_fields.items()}
        field = by_alias.get(part)
        if field is None:
            return None
        ann = field.annotation
        args = [a for arg in getattr(ann, "__args__", ()) for a in (arg, *getattr(arg, "__args__", ()))]
        model = next((a for a in [ann, *args] if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            return None
    return model


def _meaning(loc: tuple, root: type[BaseModel]) -> Optional[str]:
    """What the string at LOC must be, in words (spec.model.Meaning), if the model says."""
    field = _field_at(loc, root)
    if field is None:
        return None
    todo = [*field.metadata, field.annotation]
    while todo:
        item = todo.pop()
        if isinstance(item, Meaning):
            return item.text
        todo += [*getattr(item, "__metadata__", ()), *getattr(item, "__args__", ())]
    return None


def _range(loc: tuple, root: type[BaseModel]) -> Optional[str]:
    field = _field_at(loc, root)
    if field is None:
        return None
    bounds = {k: getattr(m, k) for m in field.metadata for k in ("ge", "le") if getattr(m, k, None) is not None}
    if set(bounds) == {"ge", "le"}:
        return f"must be a whole number from {bounds['ge']} to {bounds['le']}"
    return None


def _issue(err: dict, root: type[BaseModel] = StackSpec) -> Issue:
    loc = tuple(err["loc"])
    kind, ctx = err["type"], err.get("ctx") or {}
    path = _path(loc)
    if kind == "extra_forbidden":
        model = _model_at(loc, root)
        allowed = ", ".join(f.alias or n for n, f in model.model_fields.items()) if model else "?"
        return Issue(path, f"unknown key; allowed here: {allowed}")
    if kind == "missing":
        return Issue(path, "required")
    if kind == "hidden_value":
        return Issue(path, err["msg"])
    if kind == "string_pattern_mismatch" and (meaning := _meaning(loc, root)) is not None:
        message = f"must be {meaning}"
    elif kind == "string_too_long":
        message = f"is longer than {ctx.get('max_length')} characters"
    elif kind in ("greater_than_equal", "less_than_equal") and _range(loc, root):
        message = _range(loc, root)
    elif kind == "literal_error":
        message = f"must be one of {ctx.get('expected')}"
    elif kind == "too_short":
        message = f"needs at least {ctx.get('min_length')} item(s)"
    elif kind.startswith("ip_v4"):
        message = err["msg"] + " (such as 10.77.10.0/24 for a network, 10.77.10.5 for an address)"
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        message = "must be a mapping of its keys (KEY: VALUE), as Pulumi.yaml describes"
    elif kind == "list_type":
        message = "must be a list ([A, B] or one '- ' line per item)"
    elif kind == "value_error":
        message = err["msg"].removeprefix("Value error, ")
    else:
        message = err["msg"]
    return Issue(path, f"{message}; got {shown(err.get('input'))}")


def _is_text_field(name: str) -> bool:
    """Whether the config key holds a plain string (Pulumi passes others as JSON)."""
    field = next(f for n, f in StackSpec.model_fields.items() if (f.alias or n) == name)
    ann = field.annotation
    options = [a for a in getattr(ann, "__args__", (ann,)) if a is not type(None)]
    return all(o is str or (getattr(o, "__origin__", None) is Literal) or isinstance(o, str) for o in options)


def _is_optional(name: str) -> bool:
    field = next(f for n, f in StackSpec.model_fields.items() if (f.alias or n) == name)
    return type(None) in getattr(field.annotation, "__args__", ())


def _parse(
    raw: Mapping[str, str], project: str, encrypted: frozenset[str]
) -> tuple[dict[str, Any], frozenset[str], list[Issue]]:
    prefix = project + ":"
    config: dict[str, Any] = {}
    secrets_set: set[str] = set()
    issues: list[Issue] = []
    for full_key, text in raw.items():
        if not full_key.startswith(prefix):
            continue
        key = full_key[len(prefix):]
        if key in SECRET_KEYS:
            if text and full_key not in encrypted:
                issues.append(Issue(key, f"is stored in plain text; set it again with: pulumi config set --secret {key} ..."))
            if text:
                secrets_set.add(key)
        elif key not in config_keys() or _is_text_field(key):
            if text != "":
                config[key] = text
        else:
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                issues.append(Issue(key, f"expected structured YAML (a mapping or a list), got {shown(text)}"))
                continue
            # Pulumi.yaml's default {} of an optional section means: not given.
            if value != {} or not _is_optional(key):
                config[key] = value
    return config, frozenset(secrets_set), issues


def parse_pulumi_config(
    raw: Mapping[str, str], project: str, encrypted: frozenset[str] = frozenset()
) -> tuple[dict[str, Any], frozenset[str]]:
    """The engine's config strings (PROJECT:key -> text) as plain values, and the names
    of the secret keys that are set (encrypted: the full keys Pulumi holds as secrets).
    Secret values never enter the spec."""
    config, secrets_set, issues = _parse(raw, project, encrypted)
    if issues:
        raise SpecError(issues)
    return config, secrets_set


def _validated(
    config: Mapping[str, Any], unread: frozenset[str] = frozenset()
) -> tuple[StackSpec | PartialStackSpec, list[Issue]]:
    """The spec, or only its keys that validated when others did not, and the model's
    errors. UNREAD: keys whose text was refused already; each counts as invalid (neither
    missing nor its default)."""
    known = set(config_keys())
    issues = [
        Issue(_key_name(key), f"unknown config key; known: {', '.join(sorted(known | set(SECRET_KEYS)))}")
        for key in config
        if key not in known
    ]
    given = {k: v for k, v in config.items() if k in known}
    errors: list = []
    try:
        spec = StackSpec.model_validate(given)
    except ValidationError as e:
        errors = e.errors()
    else:
        if not unread:
            return spec, issues
    issues += [_issue(err) for err in errors if err["loc"][0] not in unread]
    return PartialStackSpec(given, unread | {err["loc"][0] for err in errors}), issues


def load_spec(config: Mapping[str, Any], secrets_set: frozenset[str] = frozenset()) -> StackSpec:
    spec, issues = _validated(config)
    issues += check(spec, Context(secrets_set=frozenset(secrets_set)))
    if issues or not isinstance(spec, StackSpec):
        raise SpecError(issues)
    return spec


# --- the whole way in: config, secret values and key files ----------------------------


@dataclass(frozen=True)
class StackInput:
    """A checked stack: its spec, and the key material it names, as the program needs it."""

    spec: StackSpec
    # Contents of the key files the stack names, by their field (ssh.privateKeyFile, ...).
    key_files: Mapping[str, bytes]
    ssh_public_key: str


Reader = Callable[[str], bytes]
# What each secret must be, as bytes, by its config key.
_MATERIAL: dict[str, Callable[[bytes, StackSpec], Optional[str]]] = {
    "sshPrivateKey": lambda data, spec: keys.private_key_problem(data),
    "fenceKey": lambda data, spec: keys.fence_key_problem(data),
    "clusterAuthKey": lambda data, spec: keys.cluster_key_problem(data, spec.generation),
}


def _read(read: Reader, field: str, path: str, issues: list[Issue]) -> Optional[bytes]:
    try:
        return read(path)
    except OSError as e:
        issues.append(Issue(field, f"cannot read {shown(e.filename or path)}: {e.strerror or e}; check the path"))
        return None


def _key_material(
    spec: StackSpec, values: Mapping[str, str], read: Reader
) -> tuple[dict[str, bytes], Optional[str], list[Issue]]:
    """The key files' contents, the public key, and what is wrong with any of them."""
    issues: list[Issue] = []
    paths = {SECRET_KEYS[key]: path for key, path in secret_files(spec).items()}
    paths["ssh.publicKeyFile"] = spec.ssh.public_key_file
    files: dict[str, bytes] = {}
    for field, path in paths.items():
        if path is not None and (data := _read(read, field, path, issues)) is not None:
            files[field] = data
    for key, field in SECRET_KEYS.items():
        if field in files and (problem := _MATERIAL[key](files[field], spec)) is not None:
            issues.append(Issue(field, f"{shown(paths[field])} {problem}"))
        text = values.get(key)
        if not text:
            continue
        data = text.encode()
        if key != "sshPrivateKey":
            problem, data = keys.base64_problem(text, key)
            if problem is not None:
                issues.append(Issue(key, problem))
                continue
        if (problem := _MATERIAL[key](data, spec)) is not None:
            issues.append(Issue(key, problem))
    public_key = spec.ssh.public_key
    if "ssh.publicKeyFile" in files:
        try:
            public_key = files["ssh.publicKeyFile"].decode("utf-8").strip()
        except UnicodeDecodeError:
            issues.append(Issue("ssh.publicKeyFile", "is not text: a public key file is one line (TYPE BASE64 [COMMENT])"))
        else:
            if (problem := keys.public_key_problem(public_key)) is not None:
                issues.append(Issue("ssh.publicKeyFile", f"{shown(spec.ssh.public_key_file)} {problem}"))
    return files, public_key, issues


def load_stack(raw: Mapping[str, str], project: str, encrypted: frozenset[str], read: Reader) -> StackInput:
    """RAW: the engine's config (PROJECT:key -> text, secrets decrypted); ENCRYPTED: the
    keys it holds as secrets; READ: the contents of a key file the stack names (raises
    OSError). Raises SpecError naming every problem found."""
    config, secrets_set, issues = _parse(raw, project, encrypted)
    # Only values held as secrets are looked at (one in plain text is refused already).
    values = {key: raw[f"{project}:{key}"] for key in secrets_set if f"{project}:{key}" in encrypted}
    spec, model_issues = _validated(config, frozenset(i.path for i in issues) & set(config_keys()))
    issues += model_issues + check(spec, Context(secrets_set=secrets_set))
    files: Mapping[str, bytes] = {}
    public_key: Optional[str] = None
    try:
        files, public_key, key_issues = _key_material(spec, values, read)
        issues += key_issues
    except NotValidated:
        pass  # a key naming the material did not validate; its own error says so
    if issues or not isinstance(spec, StackSpec) or public_key is None:
        held = [*values.values(), *(d.decode("utf-8", "replace") for d in files.values())]
        raise SpecError([Issue(i.path, scrub(i.message, held)) for i in issues])
    return StackInput(spec, files, public_key)
