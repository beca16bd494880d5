#!/usr/bin/env python3
"""Builds src/pyk8s/api/data/schemas-<version>.json.gz: the upstream OpenAPI schemas of every
kind pyk8s serves (and of what they reference), in OpenAPI v3 form.

Source: the `kubernetes-validate` package from PyPI, which ships upstream's schemas per
Kubernetes version with descriptions and the x-kubernetes-* extensions. Run:
    tools/gen_api_schemas.py [--version 1.36.0]
(downloads the wheel with pip into a temp dir; nothing is installed).
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from pyk8s.api.resources import RESOURCES  # noqa: E402

EXTRA_ROOTS = [
    "io.k8s.api.autoscaling.v1.Scale",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList",
    "io.k8s.api.core.v1.Binding",
]


def _definitions(version: str, package_version: str) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", scratch,
                        f"kubernetes-validate=={package_version}"], check=True)
        wheel = next(Path(scratch).glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            name = f"kubernetes_validate/kubernetes-json-schema/v{version}-local/_definitions.json"
            return json.loads(archive.read(name))["$defs"]


def _v3(node):
    """JSON-schema flavour (nullable type lists, $defs refs) → OpenAPI v3 as upstream serves it."""
    if isinstance(node, list):
        return [_v3(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "$ref":
            out["$ref"] = value.replace("#/$defs/", "#/components/schemas/")
        elif key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            out["type"] = types[0] if len(types) == 1 else types
        elif key == "enum":
            out[key] = [v for v in value if v is not None]
        else:
            out[key] = _v3(value)
    # A $ref next to siblings is wrapped in allOf, as upstream's v3 documents do.
    if "$ref" in out and len(out) > 1:
        ref = out.pop("$ref")
        out["allOf"] = [{"$ref": ref}]
    return out


def _special(name: str, schema: dict) -> dict:
    if name == "io.k8s.apimachinery.pkg.util.intstr.IntOrString":
        return {"description": schema.get("description", "IntOrString is a type that can hold an int32 or a string."),
                "type": "string", "format": "int-or-string", "x-kubernetes-int-or-string": True}
    if name == "io.k8s.apimachinery.pkg.api.resource.Quantity":
        return {"description": schema.get("description", "Quantity is a fixed-point representation of a number."),
                "type": "string"}
    return schema


def _refs(node, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref.rsplit("/", 1)[-1])
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for item in node:
            _refs(item, found)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--version", default="1.36.0")
    parser.add_argument("--package-version", default="1.37.0")
    args = parser.parse_args()
    definitions = _definitions(args.version, args.package_version)
    by_gvk = {}
    for name, schema in definitions.items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or []:
            by_gvk[(gvk["group"], gvk["version"], gvk["kind"])] = name
    roots = list(EXTRA_ROOTS)
    for resource in RESOURCES:
        roots.append(by_gvk[(resource.group, resource.version, resource.kind)])
        list_name = by_gvk.get((resource.group, resource.version, resource.kind + "List"))
        if list_name:
            roots.append(list_name)
    keep: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in keep:
            continue
        keep.add(name)
        found: set[str] = set()
        _refs(definitions[name], found)
        pending.extend(found - keep)
    schemas = {name: _special(name, _v3(definitions[name])) for name in sorted(keep)}
    target = REPO / "src" / "pyk8s" / "api" / "data" / f"schemas-{args.version.rsplit('.', 1)[0]}.json.gz"
    payload = json.dumps(schemas, separators=(",", ":"), sort_keys=True).encode()
    target.write_bytes(gzip.compress(payload, 9, mtime=0))
    print(f"{target.relative_to(REPO)}: {len(schemas)} schemas, {len(payload)} bytes, {target.stat().st_size} gzipped")


if __name__ == "__main__":
    main()
