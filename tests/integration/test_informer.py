"""Informers list, then watch, and keep their cache equal to the server's state."""

import asyncio

from pyk8s.api.resources import lookup
from pyk8s.client import Client
from pyk8s.client.informer import Informer

CONFIGMAPS = lookup("", "v1", "configmaps")


def test_informer_cache_follows_creates_updates_and_deletes(server):
    async def run():
        async with Client.from_kubeconfig(server.kubeconfig) as client:
            await client.create(CONFIGMAPS, {"metadata": {"name": "before", "namespace": "default"}, "data": {"a": "1"}})
            informer = Informer(client, CONFIGMAPS, namespace="default")
            seen = []
            informer.add_handlers(on_add=lambda o: seen.append(("add", o["metadata"]["name"])),
                                  on_update=lambda old, new: seen.append(("update", new["metadata"]["name"])),
                                  on_delete=lambda o: seen.append(("delete", o["metadata"]["name"])))
            task = asyncio.create_task(informer.run())
            await asyncio.wait_for(informer.synced.wait(), 10)
            assert informer.get("default/before")["data"] == {"a": "1"}
            await client.create(CONFIGMAPS, {"metadata": {"name": "after", "namespace": "default"}})
            await client.patch(CONFIGMAPS, "before", {"data": {"a": "2"}}, "default")
            await client.delete(CONFIGMAPS, "after", "default")

            async def settled():
                while ("delete", "after") not in seen:
                    await asyncio.sleep(0.01)
            await asyncio.wait_for(settled(), 10)
            task.cancel()
            # kube-root-ca.crt (published into every namespace) may show up at any time.
            seen = [event for event in seen if event[1] != "kube-root-ca.crt"]
            assert seen == [("add", "before"), ("add", "after"), ("update", "before"), ("delete", "after")]
            assert informer.get("default/before")["data"] == {"a": "2"}
            assert informer.get("default/after") is None

    asyncio.run(run())
