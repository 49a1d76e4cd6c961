"""Stack config (a plain mapping) to a validated StackSpec, or one error naming every bad key."""

from __future__ import annotations

import json
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ValidationError

from spec.model import StackSpec, config_keys
from spec.rules import Context, Issue, check
from spec.vocabulary import SECRET_KEYS


class SpecError(Exception):
    """The stack config is wrong; raised before any resource is registered."""

    def __init__(self, issues: list[Issue]):
        self.issues = issues
        super().__init__("invalid stack config:\n" + "\n".join(f"  {i}" for i in issues))

    @property
    def paths(self) -> list[str]:
        return [i.path for i in self.issues]


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(loc: tuple, root: type[BaseModel] = StackSpec) -> type[BaseModel] | None:
    """The model whose field the error location points into (for listing allowed keys)."""
    model: Any = root
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        by_alias = {f.alias or n: f for n, f in model.model_fields.items()}
        field = by_alias.get(part)
        if field is None:
            return None
        ann = field.annotation
        args = [a for a in getattr(ann, "__args__", ()) if isinstance(a, type)]
        model = next((a for a in [ann, *args] if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            return None
    return model


def _issue(err: dict, root: type[BaseModel] = StackSpec) -> Issue:
    loc = tuple(err["loc"])
    if err["type"] == "extra_forbidden":
        model = _model_at(loc, root)
        allowed = ", ".join(f.alias or n for n, f in model.model_fields.items()) if model else "?"
        return Issue(_path(loc), f"unknown key; allowed here: {allowed}")
    if err["type"] == "missing":
        return Issue(_path(loc), "required")
    return Issue(_path(loc), f"{err['msg']} (got {err.get('input')!r})")


def _is_text_field(name: str) -> bool:
    """Whether the config key holds a plain string (Pulumi passes others as JSON)."""
    field = next(f for n, f in StackSpec.model_fields.items() if (f.alias or n) == name)
    ann = field.annotation
    options = [a for a in getattr(ann, "__args__", (ann,)) if a is not type(None)]
    return all(o is str or (getattr(o, "__origin__", None) is Literal) or isinstance(o, str) for o in options)


def _is_optional(name: str) -> bool:
    field = next(f for n, f in StackSpec.model_fields.items() if (f.alias or n) == name)
    return type(None) in getattr(field.annotation, "__args__", ())


def parse_pulumi_config(
    raw: Mapping[str, str], project: str, encrypted: frozenset[str] = frozenset()
) -> tuple[dict[str, Any], frozenset[str]]:
    """The engine's config strings (PROJECT:key -> text) as plain values, and the names
    of the secret keys that are set (encrypted: the full keys Pulumi holds as secrets).
    Secret values never enter the spec."""
    prefix = project + ":"
    config: dict[str, Any] = {}
    secrets_set: set[str] = set()
    for full_key, text in raw.items():
        if not full_key.startswith(prefix):
            continue
        key = full_key[len(prefix):]
        if key in SECRET_KEYS:
            if text and full_key not in encrypted:
                raise SpecError([Issue(key, f"is stored in plain text; set it with: pulumi config set --secret {key} ...")])
            if text:
                secrets_set.add(key)
        elif key not in config_keys() or _is_text_field(key):
            if text != "":
                config[key] = text
        else:
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise SpecError([Issue(key, f"expected structured YAML, got {text!r}")]) from None
            # Pulumi.yaml's default {} of an optional section means: not given.
            if value != {} or not _is_optional(key):
                config[key] = value
    return config, frozenset(secrets_set)


def load_spec(config: Mapping[str, Any], secrets_set: frozenset[str] = frozenset()) -> StackSpec:
    known = set(config_keys())
    issues = [
        Issue(key, f"unknown config key; known: {', '.join(sorted(known | set(SECRET_KEYS)))}")
        for key in config
        if key not in known
    ]
    try:
        spec = StackSpec.model_validate(dict((k, v) for k, v in config.items() if k in known))
    except ValidationError as e:
        raise SpecError(issues + [_issue(err) for err in e.errors()]) from None
    issues += check(spec, Context(secrets_set=frozenset(secrets_set)))
    if issues:
        raise SpecError(issues)
    return spec
