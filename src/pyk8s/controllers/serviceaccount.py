"""The service-account controller (upstream's pkg/controller/serviceaccount
ServiceAccountsController): every namespace has a `default` ServiceAccount, created when the
namespace appears and again whenever it is deleted. Terminating namespaces are left alone
(the API server refuses new content in them anyway).
"""

from __future__ import annotations

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.controllers.base import Controller

NAMESPACES = lookup("", "v1", "namespaces")
SERVICE_ACCOUNTS = lookup("", "v1", "serviceaccounts")
DEFAULT_SERVICE_ACCOUNT = "default"


class ServiceAccountController(Controller):
    name = "serviceaccount"

    def __init__(self, client):
        super().__init__(client)
        self.namespaces = self.informer(NAMESPACES)
        # Only the accounts we manage: namespaces may hold many others.
        self.service_accounts = self.informer(SERVICE_ACCOUNTS,
                                              field_selector=f"metadata.name={DEFAULT_SERVICE_ACCOUNT}")
        self.namespaces.add_handlers(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new))
        self.service_accounts.add_handlers(
            on_delete=lambda account: self.queue.add(account["metadata"]["namespace"]))

    async def reconcile(self, namespace_name: str) -> None:
        namespace = self.namespaces.get(namespace_name)
        if namespace is None or namespace["metadata"].get("deletionTimestamp") \
                or (namespace.get("status") or {}).get("phase") == "Terminating":
            return
        if self.service_accounts.get(f"{namespace_name}/{DEFAULT_SERVICE_ACCOUNT}") is not None:
            return
        try:
            await self.client.create(SERVICE_ACCOUNTS, {
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": DEFAULT_SERVICE_ACCOUNT, "namespace": namespace_name},
            }, namespace_name)
        except errors.AlreadyExists:
            pass
        except errors.Forbidden:
            pass  # the namespace started terminating meanwhile
        except errors.NotFound:
            pass  # the namespace is gone
