"""Controllers behind in-cluster credentials (upstream's kube-controller-manager has both):

- RootCACertPublisher (upstream's root-ca-cert-publisher): every namespace has ConfigMap
  `kube-root-ca.crt` holding the cluster CA under `ca.crt`, which every pod's projected
  ServiceAccount volume reads; re-created when deleted, put back when changed.
- LegacyTokenController (upstream's TokensController): a Secret of type
  kubernetes.io/service-account-token naming a ServiceAccount in its annotation
  `kubernetes.io/service-account.name` gets `token` (a legacy, non-expiring JWT), `ca.crt`
  and `namespace`, and the account's uid annotation. A Secret naming a missing account (or
  one with another uid) is deleted, as are an account's token Secrets when it is deleted.

Both need what only the control plane holds, handed in by the server: the CA's PEM, and a
`sign(claims) -> token` function with the service-account signing key.
"""

from __future__ import annotations

import base64
from typing import Any, Callable

from pyk8s.api import errors
from pyk8s.api import serviceaccounttoken as satoken
from pyk8s.api.resources import lookup
from pyk8s.client.informer import object_key
from pyk8s.controllers.base import Controller

NAMESPACES = lookup("", "v1", "namespaces")
CONFIG_MAPS = lookup("", "v1", "configmaps")
SECRETS = lookup("", "v1", "secrets")
SERVICE_ACCOUNTS = lookup("", "v1", "serviceaccounts")

ROOT_CA_CONFIG_MAP = "kube-root-ca.crt"
ROOT_CA_DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
                       "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
                       "guaranteed across distributions of Kubernetes clusters.")
LEGACY_TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_UID_ANNOTATION = "kubernetes.io/service-account.uid"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class RootCACertPublisher(Controller):
    name = "root-ca-cert-publisher"

    def __init__(self, client, ca_pem: bytes):
        super().__init__(client)
        self.ca_pem = ca_pem.decode("ascii")
        self.namespaces = self.informer(NAMESPACES)
        self.config_maps = self.informer(CONFIG_MAPS, field_selector=f"metadata.name={ROOT_CA_CONFIG_MAP}")
        self.namespaces.add_handlers(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new))
        requeue = lambda config_map: self.queue.add(config_map["metadata"]["namespace"])  # noqa: E731
        self.config_maps.add_handlers(on_update=lambda old, new: requeue(new), on_delete=requeue)

    async def reconcile(self, namespace_name: str) -> None:
        namespace = self.namespaces.get(namespace_name)
        if namespace is None or namespace["metadata"].get("deletionTimestamp") \
                or (namespace.get("status") or {}).get("phase") == "Terminating":
            return
        current = self.config_maps.get(f"{namespace_name}/{ROOT_CA_CONFIG_MAP}")
        annotations = {"kubernetes.io/description": ROOT_CA_DESCRIPTION}
        if current is None:
            try:
                await self.client.create(CONFIG_MAPS, {
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": ROOT_CA_CONFIG_MAP, "namespace": namespace_name, "annotations": annotations},
                    "data": {"ca.crt": self.ca_pem}}, namespace_name)
            except (errors.AlreadyExists, errors.Forbidden, errors.NotFound):
                pass  # made meanwhile, or the namespace is terminating or gone
            return
        current_annotations = current["metadata"].get("annotations") or {}
        if current.get("data") == {"ca.crt": self.ca_pem} and not current.get("binaryData") \
                and current_annotations.get("kubernetes.io/description") == ROOT_CA_DESCRIPTION:
            return
        wanted = {**current, "data": {"ca.crt": self.ca_pem},
                  "metadata": {**current["metadata"], "annotations": {**current_annotations, **annotations}}}
        wanted.pop("binaryData", None)
        try:
            await self.client.update(CONFIG_MAPS, wanted)
        except (errors.Conflict, errors.NotFound):
            self.queue.add(namespace_name)


class LegacyTokenController(Controller):
    name = "serviceaccount-token"

    def __init__(self, client, *, sign: Callable[[dict[str, Any]], str], ca_pem: bytes):
        super().__init__(client)
        self.sign = sign
        self.ca_pem = ca_pem
        self.secrets = self.informer(SECRETS, field_selector=f"type={LEGACY_TOKEN_TYPE}")
        self.service_accounts = self.informer(SERVICE_ACCOUNTS)
        self.secrets.add_handlers(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new))
        self.service_accounts.add_handlers(on_add=self._account_changed,
                                           on_update=lambda old, new: self._account_changed(new),
                                           on_delete=self._account_changed)

    def _account_changed(self, account: dict[str, Any]) -> None:
        meta = account["metadata"]
        for secret in self.secrets.list(meta["namespace"]):
            if (secret["metadata"].get("annotations") or {}).get(SA_NAME_ANNOTATION) == meta["name"]:
                self.enqueue(secret)

    async def reconcile(self, key: str) -> None:
        secret = self.secrets.get(key)
        if secret is None or secret["metadata"].get("deletionTimestamp") or secret.get("type") != LEGACY_TOKEN_TYPE:
            return
        meta = secret["metadata"]
        namespace = meta["namespace"]
        annotations = meta.get("annotations") or {}
        account_name = annotations.get(SA_NAME_ANNOTATION, "")
        account = self.service_accounts.get(f"{namespace}/{account_name}")
        if account is None:
            # The informer may lag a just-created account: ask the API before deleting.
            try:
                account = await self.client.get(SERVICE_ACCOUNTS, account_name, namespace)
            except errors.NotFound:
                account = None
        wanted_uid = annotations.get(SA_UID_ANNOTATION)
        if account is None or account["metadata"].get("deletionTimestamp") \
                or (wanted_uid and wanted_uid != account["metadata"].get("uid")):
            try:
                await self.client.delete(SECRETS, meta["name"], namespace)
            except errors.NotFound:
                pass
            return
        data = dict(secret.get("data") or {})
        if data.get("token") and data.get("ca.crt") and data.get("namespace") and wanted_uid:
            return
        if not data.get("token"):
            data["token"] = _b64(self.sign(satoken.legacy_claims(account, secret)).encode())
        data.setdefault("ca.crt", _b64(self.ca_pem))
        data.setdefault("namespace", _b64(namespace.encode()))
        wanted = {**secret, "data": data,
                  "metadata": {**meta, "annotations": {**annotations, SA_UID_ANNOTATION: account["metadata"]["uid"]}}}
        try:
            await self.client.update(SECRETS, wanted)
        except errors.Conflict:
            self.queue.add(object_key(secret))
        except errors.NotFound:
            pass
