"""Registry write steps that depend on who asks (requestcontext.request_user): the
CertificateSigningRequest strategy (the requestor is the request's user; spec and approval
are guarded per subresource) and NodeRestriction for node users. The registry calls these
on every write; anything else returns at once.
"""

from __future__ import annotations

from typing import Any

from pyk8s.api import certificates
from pyk8s.api.resources import Resource
from pyk8s.apiserver import noderestriction
from pyk8s.apiserver.nodeauthorizer import node_identity
from pyk8s.apiserver.requestcontext import request_user

CSR_KIND = "CertificateSigningRequest"
OPERATIONS = {"": "UPDATE", "status": "UPDATE", "approval": "UPDATE"}


def _is_csr(resource: Resource) -> bool:
    return resource.kind == CSR_KIND and resource.group == "certificates.k8s.io"


def _node_of_request() -> str:
    user = request_user()
    if user is None:
        return ""
    is_node, name = node_identity(user)
    return name if is_node else ""


def _name(obj: dict[str, Any] | None) -> str:
    return ((obj or {}).get("metadata") or {}).get("name") or ""


async def admit_create(registry, resource: Resource, obj: dict[str, Any]) -> None:
    if _is_csr(resource):
        user = request_user()
        extra = dict(getattr(user, "extra", ()) or ()) if user is not None else {}
        certificates.prepare_for_create(obj, getattr(user, "name", ""), tuple(getattr(user, "groups", ()) or ()),
                                        getattr(user, "uid", "") or "", {k: list(v) for k, v in extra.items()})
        certificates.raise_if(certificates.validate_spec(obj), obj)
    node = _node_of_request()
    if node:
        noderestriction.admit(node, "CREATE", resource, "", _name(obj), obj, None)


def prepare_approval(resource: Resource, obj: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """A write through /approval (CSRs only): only the conditions change."""
    return certificates.prepare_for_approval_update(obj, old)


async def admit_update(registry, resource: Resource, subresource: str, obj: dict[str, Any],
                       old: dict[str, Any]) -> None:
    if _is_csr(resource):
        if subresource == "":
            certificates.prepare_for_update(obj, old)
        elif subresource == "status":
            certificates.prepare_for_status_update(obj, old)
        certificates.raise_if(certificates.validate_status(obj, old), obj)
    node = _node_of_request()
    if node:
        noderestriction.admit(node, "UPDATE", resource, subresource, _name(old), obj, old)


async def admit_delete(registry, resource: Resource, obj: dict[str, Any]) -> None:
    node = _node_of_request()
    if node:
        noderestriction.admit(node, "DELETE", resource, "", _name(obj), None, obj)
