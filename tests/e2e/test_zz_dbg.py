import json
from tests.e2e.test_book_daemonset_and_cascade import PI_PROXY_DS, eventually, pods
def test_dbg(kubectl, server):
    kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "labels": {"kiamol": "ch06"}}}))
    kubectl("apply", "-f", "-", input=PI_PROXY_DS)
    eventually(lambda: pods(kubectl, "app=pi-proxy"))
    kubectl("set", "image", "ds/pi-proxy", "nginx=nginx:1.18")
    eventually(lambda: "nginx:1.18" in kubectl("get", "pods", "-l", "app=pi-proxy", "-o", "yaml"))
    print(kubectl("rollout", "history", "ds/pi-proxy"))
    print(kubectl("rollout", "history", "ds/pi-proxy", "--revision=1"))
    print(kubectl("rollout", "undo", "ds/pi-proxy", check=False))
    eventually(lambda: "nginx:1.17" in kubectl("get", "pods", "-l", "app=pi-proxy", "-o", "yaml"))
    print(kubectl("rollout", "history", "ds/pi-proxy"))
    print(kubectl("get", "ds", "-o", "wide"))
    print(kubectl("get", "pods", "-o", "wide"))
    import subprocess, time
    pid = server.process.pid
    t0 = open(f"/proc/{pid}/stat").read().split()[13:15]
    time.sleep(5)
    t1 = open(f"/proc/{pid}/stat").read().split()[13:15]
    print("idle cpu ticks in 5s:", sum(map(int, t1)) - sum(map(int, t0)))
