"""Pod start-up benchmark: create → Running through a real `pyk8s server` with its embedded
node, beside the raw CRI floor on the same containerd.

Starts `pyk8s server --disable-agent` (API server, controllers, scheduler) on a temp data dir
and the node as its own process, `python -m pyk8s agent` (kubelet + its containerd), so the
agent's RSS is its own; then measures, through one pod watch:
- N pods created one after another (each waits for the previous one to run);
- a burst of B pods created at once (latency per pod, and until the last one runs);
both as create → phase Running and create → condition Ready, p50/p99. Pods are scheduled
by the scheduler (no nodeName), as `kubectl run` would be.

The floor is what containerd alone costs for the same work: RunPodSandbox (CNI included) +
CreateContainer + StartContainer of the same busybox image, called directly over CRI on the
same containerd socket in the same run, sequentially N times. Ratios pyk8s / floor are
printed. Also RSS: the agent process (without containerd), the server process (API server +
controllers + scheduler) and containerd, idle and with the burst's pods running.

Goals (the node issue): p50 ≤ 2× the floor, p99 ≤ 1 s, burst of 30 all running ≤ 8 s, agent
(without containerd) ≤ 60 MB RSS.

    .venv/bin/python bench/pod_startup.py                  # 20 sequential, burst of 30
    .venv/bin/python bench/pod_startup.py --pods 5 --burst 5   # quick look

The run happens inside its own network namespace (only loopback), entered before anything
else starts; every pod, sandbox and process it starts is removed on every exit path.
"""

from __future__ import annotations

if __name__ == "__main__":
    # Network safety: a private network namespace before any thread or event loop exists.
    from pyk8s.cluster.localcluster import isolate_network

    isolate_network()

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.client import Client
from pyk8s.cluster.localcluster import LocalServer, in_isolated_network

PODS = lookup("", "v1", "pods")
NODES = lookup("", "v1", "nodes")
NAMESPACE = "default"
IMAGE = "docker.io/pyk8s/busybox:1.35"
GOAL_P99 = 1.0
GOAL_BURST = 8.0
GOAL_AGENT_RSS_MB = 60.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pids_matching(predicate) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = [a for a in (entry / "cmdline").read_bytes().decode(errors="replace").split("\0") if a]
            except OSError:
                continue
            if predicate(argv):
                found.append(int(entry.name))
    return found


class PodWatch:
    """One watch on the namespace's pods; resolves per-pod futures for Running and Ready."""

    def __init__(self, client: Client):
        self.client = client
        self.running: dict[str, asyncio.Future] = {}
        self.ready: dict[str, asyncio.Future] = {}
        self.gone: dict[str, asyncio.Future] = {}
        self.task: asyncio.Task | None = None
        self.started = asyncio.Event()

    def expect(self, name: str) -> None:
        loop = asyncio.get_running_loop()
        self.running[name], self.ready[name], self.gone[name] = loop.create_future(), loop.create_future(), loop.create_future()

    async def run(self, resource_version: str) -> None:
        async for event in self.client.watch(PODS, NAMESPACE, resource_version=resource_version):
            now = time.monotonic()
            pod = event["object"]
            name = pod.get("metadata", {}).get("name", "")
            if event["type"] == "DELETED":
                future = self.gone.get(name)
            else:
                status = pod.get("status") or {}
                if status.get("phase") == "Running":
                    self._resolve(self.running.get(name), now)
                conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
                if conditions.get("Ready") == "True":
                    self._resolve(self.ready.get(name), now)
                future = None
            self._resolve(future, now)

    @staticmethod
    def _resolve(future: asyncio.Future | None, now: float) -> None:
        if future is not None and not future.done():
            future.set_result(now)


def pod_body(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"bench": "pod-startup"}},
            "spec": {"terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "main", "image": "pyk8s/busybox:1.35", "imagePullPolicy": "IfNotPresent",
                                     "command": ["sleep", "3600"]}]}}


async def start_pod(client: Client, watch: PodWatch, name: str) -> tuple[float, float]:
    watch.expect(name)
    started = time.monotonic()
    await client.create(PODS, pod_body(name), NAMESPACE)
    running = await asyncio.wait_for(watch.running[name], 120)
    ready = await asyncio.wait_for(watch.ready[name], 120)
    return running - started, ready - started


async def delete_pods(client: Client, watch: PodWatch, names: list[str]) -> None:
    for name in names:
        try:
            await client.delete(PODS, name, NAMESPACE, grace_period_seconds=0)
        except errors.NotFound:
            watch._resolve(watch.gone.get(name), time.monotonic())
    await asyncio.wait_for(asyncio.gather(*(watch.gone[name] for name in names)), 120)


async def wait_sandboxes_removed(socket: str) -> None:
    """With grace 0 the API forgets a pod before the kubelet has torn it down: wait for the
    runtime too, so one phase's teardown does not run during the next one's measurements."""
    from pyk8s.kubelet.cri import CRIClient

    cri = CRIClient(socket)
    deadline = time.monotonic() + 120
    try:
        while await cri.list_sandboxes({"bench": "pod-startup"}):
            if time.monotonic() > deadline:
                raise TimeoutError("pod sandboxes not removed after 120 s")
            await asyncio.sleep(0.1)
    finally:
        await cri.close()


async def cri_floor(socket: str, count: int, pod_dir: Path) -> list[float]:
    """RunPodSandbox + CreateContainer + StartContainer directly on containerd."""
    from pyk8s.kubelet.cri import CRIClient
    from pyk8s.kubelet.pods import remove_pod_cgroups

    cri = CRIClient(socket)
    latencies = []
    made: list[tuple[str, str]] = []
    try:
        image = (await cri.image_status(IMAGE))["id"]
        for index in range(count):
            uid = str(uuid.uuid4())
            sandbox_config = {
                "metadata": {"name": f"floor-{index}", "uid": uid, "namespace": "bench-floor", "attempt": 0},
                "hostname": f"floor-{index}", "log_directory": str(pod_dir / uid),
                "labels": {"pyk8s.io/bench": "floor"},
                "linux": {"cgroup_parent": f"/kubepods/besteffort/pod{uid}",
                          "security_context": {"namespace_options": {"network": 0, "pid": 1, "ipc": 0}}}}
            container_config = {"metadata": {"name": "main", "attempt": 0}, "image": {"image": image},
                                "command": ["sleep", "3600"], "log_path": "main/0.log",
                                "labels": {"pyk8s.io/bench": "floor"}}
            (pod_dir / uid).mkdir(parents=True, exist_ok=True)
            started = time.monotonic()
            sandbox = (await cri.call("RunPodSandbox", {"config": sandbox_config}))["pod_sandbox_id"]
            made.append((sandbox, uid))
            container = (await cri.call("CreateContainer", {"pod_sandbox_id": sandbox, "config": container_config,
                                                            "sandbox_config": sandbox_config}))["container_id"]
            await cri.call("StartContainer", {"container_id": container})
            latencies.append(time.monotonic() - started)
    finally:
        for sandbox, uid in made:
            await cri.call("StopPodSandbox", {"pod_sandbox_id": sandbox})
            await cri.call("RemovePodSandbox", {"pod_sandbox_id": sandbox})
            remove_pod_cgroups(uid)
        await cri.close()
    return latencies


def summary(label: str, values: list[float], floor_p50: float | None = None) -> str:
    p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
    text = f"{label:<34} p50 {p50 * 1000:6.0f} ms   p99 {p99 * 1000:6.0f} ms"
    if floor_p50:
        text += f"   p50 = {p50 / floor_p50:.1f}x floor"
    return text


async def measure(server: LocalServer, agent: subprocess.Popen, args: argparse.Namespace) -> None:
    from pyk8s.kubelet.containerd import Containerd

    agent_dir = server.data_dir / "agent"
    socket = Containerd(agent_dir, cni_conf_dir=agent_dir / "cni" / "net.d").socket
    config = str(agent_dir / "containerd" / "config.toml")
    async with Client.from_kubeconfig(server.kubeconfig, field_manager="bench") as client:
        deadline = time.monotonic() + 120
        while True:
            nodes = (await client.list(NODES))["items"]
            if any(c["type"] == "Ready" and c["status"] == "True"
                   for n in nodes for c in (n.get("status") or {}).get("conditions") or []):
                break
            if time.monotonic() > deadline:
                raise TimeoutError("node not Ready")
            await asyncio.sleep(0.2)
        watch = PodWatch(client)
        resource_version = (await client.list(PODS, NAMESPACE))["metadata"]["resourceVersion"]
        watch.task = asyncio.create_task(watch.run(resource_version))
        try:
            [containerd_pid] = pids_matching(lambda argv: argv[:1] == ["containerd"] and config in argv)
            await asyncio.sleep(3)  # let start-up work (image import, first syncs) settle
            idle_server, idle_containerd = rss_mib(server.process.pid), rss_mib(containerd_pid)
            idle_agent = rss_mib(agent.pid)

            # Warm-up: first pod pays one-time costs (informer caches, CNI bridge, image unpack).
            await start_pod(client, watch, "warmup")
            await delete_pods(client, watch, ["warmup"])
            await wait_sandboxes_removed(socket)

            sequential_running, sequential_ready = [], []
            names = [f"seq-{i}" for i in range(args.pods)]
            for name in names:
                running, ready = await start_pod(client, watch, name)
                sequential_running.append(running)
                sequential_ready.append(ready)
            await delete_pods(client, watch, names)
            await wait_sandboxes_removed(socket)

            names = [f"burst-{i}" for i in range(args.burst)]
            burst_started = time.monotonic()
            results = await asyncio.gather(*(start_pod(client, watch, name) for name in names))
            burst_total = time.monotonic() - burst_started
            busy_server, busy_containerd = rss_mib(server.process.pid), rss_mib(containerd_pid)
            busy_agent = rss_mib(agent.pid)
            shims = pids_matching(lambda argv: bool(argv) and argv[0].endswith("containerd-shim-runc-v2")
                                  and socket in argv)
            shim_rss = sum(rss_mib(pid) for pid in shims)
            await delete_pods(client, watch, names)
            await wait_sandboxes_removed(socket)
        finally:
            watch.task.cancel()
            await asyncio.gather(watch.task, return_exceptions=True)

    floor = await cri_floor(socket, args.pods, server.data_dir / "floor-logs")
    floor_p50 = percentile(floor, 0.5)
    burst_running = [r for r, _ in results]
    burst_ready = [r for _, r in results]
    print(f"pod start-up on pyk8s (agent process, containerd 1.6, runc), {args.pods} sequential, burst of {args.burst}")
    print(summary("raw CRI floor (sandbox+create+start)", floor))
    print(summary(f"sequential create -> Running", sequential_running, floor_p50))
    print(summary(f"sequential create -> Ready", sequential_ready, floor_p50))
    print(summary(f"burst of {args.burst}: create -> Running", burst_running, floor_p50))
    print(summary(f"burst of {args.burst}: create -> Ready", burst_ready, floor_p50))
    print(f"burst of {args.burst}: all Running after {burst_total * 1000:.0f} ms "
          f"(floor x{args.burst} sequential = {sum(floor) / len(floor) * args.burst * 1000:.0f} ms)")
    print(f"goals: p50 <= 2x floor: {'met' if percentile(sequential_running, 0.5) <= 2 * floor_p50 else 'MISSED'}; "
          f"p99 <= {GOAL_P99:g} s: {'met' if percentile(sequential_running, 0.99) <= GOAL_P99 else 'MISSED'}; "
          f"burst all Running <= {GOAL_BURST:g} s: {'met' if burst_total <= GOAL_BURST else 'MISSED'}; "
          f"agent RSS <= {GOAL_AGENT_RSS_MB:g} MB: "
          f"{'met' if max(idle_agent, busy_agent) * 1.048576 <= GOAL_AGENT_RSS_MB else 'MISSED'}")
    print(f"RSS idle:   agent {idle_agent:.0f} MiB, server process (apiserver+controllers+scheduler) "
          f"{idle_server:.0f} MiB, containerd {idle_containerd:.0f} MiB")
    print(f"RSS with {args.burst} pods: agent {busy_agent:.0f} MiB, server process {busy_server:.0f} MiB, "
          f"containerd {busy_containerd:.0f} MiB, "
          f"{len(shims)} shims {shim_rss:.0f} MiB "
          f"(RSS sums count shared pages once per process)")


def cleanup_runtime(server: LocalServer) -> None:
    """Remove whatever sandboxes the run left (an interrupted run) through CRI."""
    agent_dir = server.data_dir / "agent"
    script = (
        "import asyncio, sys\nfrom pathlib import Path\nfrom pyk8s.kubelet.containerd import Containerd\n"
        "from pyk8s.kubelet.cri import CRIClient\nfrom pyk8s.kubelet.pods import PodManager\n"
        "async def main(d):\n    r = Containerd(d, cni_conf_dir=d / 'cni' / 'net.d')\n    await r.start()\n"
        "    cri = CRIClient(r.socket)\n"
        "    await PodManager(None, cri, node_name='', node_ip='', data_dir=d, log_root=d / 'logs').remove_all()\n"
        "    await cri.close()\n    await r.stop()\n"
        "asyncio.run(main(Path(sys.argv[1])))\n")
    subprocess.run([sys.executable, "-c", script, str(agent_dir)], check=False, timeout=120)


def start_agent(server: LocalServer, work: Path) -> subprocess.Popen:
    """`pyk8s agent` as its own process (what a joined node runs), with the data dir the
    embedded agent would use, so cleanup_runtime finds its containerd."""
    log = open(work / "agent.log", "ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "pyk8s", "agent", "--kubeconfig", str(server.kubeconfig),
             "--data-dir", str(server.data_dir / "agent"), "--node-name", "bench-node", "--kubelet-port", "0",
             "--remove-pods-on-exit"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    finally:
        log.close()


def stop_agent(agent: subprocess.Popen) -> None:
    agent.terminate()
    try:
        agent.wait(60)
    except subprocess.TimeoutExpired:
        agent.kill()
        agent.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=20, help="sequential pods (default 20)")
    parser.add_argument("--burst", type=int, default=30, help="pods created at once (default 30)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server log)")
    args = parser.parse_args()
    if not in_isolated_network():
        print("refusing to run outside an isolated network namespace", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="pyk8s-bench-pods-"))
    server = LocalServer(work / "server", extra_args=["--disable-agent"])
    agent = None
    try:
        server.start(timeout=60)
        agent = start_agent(server, work)
        asyncio.run(measure(server, agent, args))
    finally:
        if agent is not None:
            stop_agent(agent)
        server.stop(timeout=60, remove_pods=True)
        cleanup_runtime(server)
        mounted = [line for line in Path("/proc/mounts").read_text().splitlines() if str(work) in line]
        if args.keep or mounted:
            print(f"kept {work}" + (f" ({len(mounted)} mounts still under it)" if mounted else ""), file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
