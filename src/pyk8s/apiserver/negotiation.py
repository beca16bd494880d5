"""Content negotiation: decoding request bodies and choosing the response form.

Bodies arrive as JSON, YAML or Kubernetes protobuf (`k8s\\0` + runtime.Unknown). Responses
are JSON (also for clients that prefer protobuf: they accept JSON too), YAML when asked,
or a meta.k8s.io Table / PartialObjectMetadata when the Accept header asks `as=...`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import yaml

from pyk8s.api import errors

JSON = "application/json"
YAML = "application/yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


@dataclass(frozen=True)
class ResponseForm:
    media_type: str = JSON  # JSON or YAML
    as_kind: str = ""  # "", "Table", "PartialObjectMetadata", "PartialObjectMetadataList", "APIGroupDiscoveryList"
    group: str = ""
    version: str = ""


def parse_accept(header: str | None) -> list[tuple[str, dict[str, str]]]:
    if not header:
        return [("*/*", {})]
    result = []
    for part in header.split(","):
        pieces = [p.strip() for p in part.split(";")]
        if not pieces[0]:
            continue
        params = {}
        for piece in pieces[1:]:
            if "=" in piece:
                key, _, value = piece.partition("=")
                params[key.strip()] = value.strip()
        result.append((pieces[0].lower(), params))
    return result


def choose_form(header: str | None, *, allow_as: tuple[str, ...] = ("Table", "PartialObjectMetadata", "PartialObjectMetadataList")) -> ResponseForm:
    """First acceptable media type in the client's order (Accept q-values are not used by
    Kubernetes clients)."""
    for media_type, params in parse_accept(header):
        as_kind = params.get("as", "")
        if as_kind:
            if as_kind in allow_as and params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1") \
                    and media_type in (JSON, YAML):
                return ResponseForm(media_type, as_kind, params.get("g", ""), params.get("v", ""))
            continue
        if media_type in (JSON, "*/*", "application/*", "application/json;stream=watch"):
            return ResponseForm(JSON)
        if media_type == YAML:
            return ResponseForm(YAML)
        if media_type == PROTOBUF or media_type.startswith("application/vnd.kubernetes.protobuf"):
            continue  # we answer protobuf-preferring clients with JSON, listed next by them
    if header and all(mt not in (JSON, YAML, "*/*", "application/*") and not mt.startswith(PROTOBUF)
                      for mt, _ in parse_accept(header)):
        raise errors.NotAcceptable("only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf")
    return ResponseForm(JSON)


def decode_body(body: bytes, content_type: str | None) -> Any:
    media_type = (content_type or JSON).split(";")[0].strip().lower()
    if not body:
        raise errors.BadRequest("the body of the request was empty")
    if media_type == PROTOBUF:
        from pyk8s.api.protobuf import decode_request
        return decode_request(body)
    if media_type in (YAML, APPLY_PATCH, "application/x-yaml", "text/yaml"):
        try:
            return yaml.safe_load(body)
        except yaml.YAMLError as exc:
            raise errors.BadRequest(f"error converting YAML to JSON: {exc}")
    if media_type in (JSON, MERGE_PATCH, JSON_PATCH, STRATEGIC_MERGE_PATCH, "*/*", ""):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            # kubectl sends JSON; anything that does not parse is reported like upstream.
            raise errors.BadRequest(f"couldn't get version/kind; json parse error: {exc}")
    raise errors.UnsupportedMediaType(f'the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf')


class _YamlDumper(yaml.SafeDumper):
    pass


def _str_presenter(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_YamlDumper.add_representer(str, _str_presenter)
# Mappings of any dict type (the registry's StoredObject) are written as plain mappings.
_YamlDumper.add_multi_representer(dict, yaml.SafeDumper.represent_dict)


def encode(value: Any, media_type: str = JSON) -> bytes:
    if media_type == YAML:
        return yaml.dump(value, Dumper=_YamlDumper, sort_keys=False, default_flow_style=False, allow_unicode=True).encode()
    return orjson.dumps(value)
