import asyncio, json
from tests.integration.test_lifecycle_controllers import *

def test_debug(server):
    async def scenario(client):
        name = unique("ds"); label = f"pyk8s.test/{name}"; node = unique("node")
        await register_node(client, node, {label: "yes"})
        await client.create(DAEMONSETS, daemonset(name, label))
        await asyncio.sleep(3)
        print(json.dumps((await client.get(DAEMONSETS, name, "default")).get("status")))
        print([ (p["metadata"]["name"], p["spec"].get("nodeName")) for p in (await client.list(PODS, "default"))["items"]])
        print([ (e["reason"], e["message"]) for e in (await client.list(EVENTS, "default"))["items"]])
        print([ r["metadata"]["name"] for r in (await client.list(REVISIONS, "default"))["items"]])
    run(server, scenario)
    print(server.log_tail(30))
