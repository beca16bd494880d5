"""Capture real kubectl protobuf request bodies as test fixtures.

Starts a throwaway HTTPS API stub on 127.0.0.1 (self-signed certificate, bearer token,
legacy discovery, 404 for OpenAPI so kubectl skips schema validation), runs the real kubectl
`create <subcommand>` for each entry of COMMANDS, and writes per command into
tests/unit/fixtures/protobuf/:
  <name>.bin   the POST body exactly as kubectl sent it (b"k8s\\0" + runtime.Unknown)
  <name>.json  `kubectl <same command> --dry-run=client -o json`: Go's own JSON rendering of
               the same object, an independent oracle for the decoder
and commands.json (name -> kubectl arguments, request path and content type).

Usage: .venv/bin/python tools/capture_protobuf_fixtures.py [kubectl]
Tests only read the fixtures; rerun this to refresh them after a kubectl upgrade.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "unit" / "fixtures" / "protobuf"
DEFAULT_KUBECTL = REPO / ".venv" / "bin" / "kubectl"
TOKEN = "capture-token"

# Binary file content that is not UTF-8, so kubectl puts it in ConfigMap binaryData.
BLOB = bytes(range(0xF0, 0x100)) + b"\x00\x01binary"

# name -> kubectl arguments (after "create"); files named here are made in the work dir.
COMMANDS: dict[str, list[str]] = {
    "deployment_web": ["deployment", "web", "--image=nginx:1.27", "--replicas=3", "--port=80"],
    "deployment_two_images": ["deployment", "multi", "--image=busybox:1.36", "--image=nginx"],
    "deployment_zero_replicas": ["deployment", "zero", "--image=nginx", "--replicas=0"],
    "deployment_command": ["deployment", "cmd", "--image=busybox:1.36",
                           "-n", "team-a", "--", "sleep", "3600"],
    "configmap": ["configmap", "cfg", "--from-literal=a=1", "--from-literal=greeting=hello world",
                  "--from-file=blob=blob.bin"],
    "secret_generic": ["secret", "generic", "s", "--from-literal=a=b", "--from-literal=pw=p@ss:w0rd",
                       "--from-literal=empty="],
    "secret_tls": ["secret", "tls", "tls1", "--cert=tls.crt", "--key=tls.key"],
    "secret_docker_registry": ["secret", "docker-registry", "reg", "--docker-server=registry.example.com",
                               "--docker-username=u", "--docker-password=p",
                               "--docker-email=u@example.com"],
    "namespace": ["namespace", "ns1"],
    "service_clusterip": ["service", "clusterip", "svc1", "--tcp=80:8080", "--tcp=443:https"],
    "service_headless": ["service", "clusterip", "headless", "--clusterip=None"],
    "service_nodeport": ["service", "nodeport", "x", "--tcp=80:8080", "--node-port=30080"],
    "service_loadbalancer": ["service", "loadbalancer", "lb", "--tcp=5678:8080"],
    "service_externalname": ["service", "externalname", "ext", "--external-name=example.com", "--tcp=80"],
    "job": ["job", "j1", "--image=busybox", "--", "echo", "hello world"],
    "cronjob": ["cronjob", "c", "--image=busybox", "--schedule=*/1 * * * *", "--restart=OnFailure",
                "--", "echo", "hi"],
    "serviceaccount": ["serviceaccount", "sa1"],
    "quota": ["quota", "q", "--hard=cpu=1,memory=1Gi,pods=2,requests.storage=0.5Gi,limits.cpu=2000m"],
    "quota_scoped": ["quota", "q2", "--hard=pods=5", "--scopes=BestEffort"],
    "priorityclass": ["priorityclass", "p", "--value=1000", "--description=d", "--preemption-policy=Never"],
    "priorityclass_negative": ["priorityclass", "low", "--value=-10", "--global-default=true"],
    "priorityclass_zero": ["priorityclass", "zero", "--value=0"],
    "pdb_min_available": ["poddisruptionbudget", "p", "--selector=app=x", "--min-available=1"],
    "pdb_min_available_zero": ["poddisruptionbudget", "p0", "--selector=app=x", "--min-available=0"],
    "pdb_max_unavailable": ["poddisruptionbudget", "pdb2", "--selector=app=web,tier in (fe,be)",
                            "--max-unavailable=30%"],
    "role": ["role", "r1", "--verb=get,list,watch", "--resource=pods,deployments.apps,pods/log"],
    "rolebinding": ["rolebinding", "rb", "--role=r1", "--user=alice", "--group=devs",
                    "--serviceaccount=default:sa1"],
    "ingress": ["ingress", "ing", "--class=nginx", "--rule=foo.com/bar*=svc1:8080,tls=my-cert",
                "--default-backend=defsvc:80"],
}

# (group, version) -> [(plural, kind, namespaced, short names)]
RESOURCES: dict[tuple[str, str], list[tuple[str, str, bool, list[str]]]] = {
    ("", "v1"): [
        ("namespaces", "Namespace", False, ["ns"]),
        ("pods", "Pod", True, ["po"]),
        ("pods/log", "Pod", True, []),
        ("configmaps", "ConfigMap", True, ["cm"]),
        ("secrets", "Secret", True, []),
        ("services", "Service", True, ["svc"]),
        ("serviceaccounts", "ServiceAccount", True, ["sa"]),
        ("resourcequotas", "ResourceQuota", True, ["quota"]),
    ],
    ("apps", "v1"): [("deployments", "Deployment", True, ["deploy"])],
    ("batch", "v1"): [("jobs", "Job", True, []), ("cronjobs", "CronJob", True, ["cj"])],
    ("policy", "v1"): [("poddisruptionbudgets", "PodDisruptionBudget", True, ["pdb"])],
    ("scheduling.k8s.io", "v1"): [("priorityclasses", "PriorityClass", False, ["pc"])],
    ("rbac.authorization.k8s.io", "v1"): [
        ("roles", "Role", True, []), ("rolebindings", "RoleBinding", True, []),
        ("clusterroles", "ClusterRole", False, []), ("clusterrolebindings", "ClusterRoleBinding", False, []),
    ],
    ("networking.k8s.io", "v1"): [("ingresses", "Ingress", True, ["ing"])],
}


def self_signed_certificate(common_name: str) -> tuple[bytes, bytes]:
    """Return (certificate PEM, private key PEM) for a short-lived self-signed cert."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def build_app(captured: list[dict]) -> web.Application:
    def resource_list(group: str, version: str) -> dict:
        resources = []
        for plural, kind, namespaced, short_names in RESOURCES[(group, version)]:
            entry = {"name": plural, "singularName": "" if "/" in plural else kind.lower(),
                     "namespaced": namespaced, "kind": kind,
                     "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}
            if short_names:
                entry["shortNames"] = short_names
            resources.append(entry)
        group_version = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
                "resources": resources}

    async def handle(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"kind": "Status", "code": 401}, status=401)
        path = request.path.rstrip("/")
        if request.method == "POST":
            body = await request.read()
            captured.append({"path": request.path, "content_type": request.content_type,
                             "body": body})
            return web.json_response(placeholder_object(path, body), status=201)
        if path == "/version":
            return web.json_response({"major": "1", "minor": "36", "gitVersion": "v1.36.4"})
        if path == "/api":
            return web.json_response({"kind": "APIVersions", "versions": ["v1"],
                                      "serverAddressByClientCIDRs": []})
        if path == "/apis":
            groups = []
            for group, version in RESOURCES:
                if group:
                    group_version = {"groupVersion": f"{group}/{version}", "version": version}
                    groups.append({"name": group, "versions": [group_version],
                                   "preferredVersion": group_version})
            return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        if path == "/api/v1":
            return web.json_response(resource_list("", "v1"))
        parts = path.split("/")
        if len(parts) == 4 and parts[1] == "apis" and (parts[2], parts[3]) in RESOURCES:
            return web.json_response(resource_list(parts[2], parts[3]))
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                  "reason": "NotFound", "code": 404}, status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def placeholder_object(path: str, body: bytes) -> dict:
    """What the stub answers a create with: the decoded object if pyk8s can decode it."""
    sys.path.insert(0, str(REPO / "src"))
    try:
        from pyk8s.api.protobuf import decode_request
        return decode_request(body)
    except Exception:  # the stub must still answer, so the capture is never lost
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": path.rsplit("/", 1)[-1]}}


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_work_files(work_dir: Path, port: int) -> Path:
    cert_pem, key_pem = self_signed_certificate("localhost")
    (work_dir / "server.crt").write_bytes(cert_pem)
    (work_dir / "server.key").write_bytes(key_pem)
    tls_cert, tls_key = self_signed_certificate("tls.example.com")
    (work_dir / "tls.crt").write_bytes(tls_cert)
    (work_dir / "tls.key").write_bytes(tls_key)
    (work_dir / "blob.bin").write_bytes(BLOB)
    kubeconfig = work_dir / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "capture",
        "clusters": [{"name": "capture", "cluster": {"server": f"https://127.0.0.1:{port}",
                                                      "insecure-skip-tls-verify": True}}],
        "users": [{"name": "capture", "user": {"token": TOKEN}}],
        "contexts": [{"name": "capture", "context": {"cluster": "capture", "user": "capture"}}],
    }))
    return kubeconfig


def with_dry_run(arguments: list[str]) -> list[str]:
    # Flags must go before "--", or they become the container's arguments.
    extra = ["--dry-run=client", "-o", "json"]
    if "--" in arguments:
        split = arguments.index("--")
        return arguments[:split] + extra + arguments[split:]
    return arguments + extra


async def capture(kubectl: Path) -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    captured: list[dict] = []
    port = free_loopback_port()
    with tempfile.TemporaryDirectory() as work:
        work_dir = Path(work)
        kubeconfig = write_work_files(work_dir, port)
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(work_dir / "server.crt", work_dir / "server.key")
        runner = web.AppRunner(build_app(captured))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context).start()
        index = {}
        try:
            for name, arguments in COMMANDS.items():
                base = [str(kubectl), "--kubeconfig", str(kubeconfig), "--cache-dir",
                        str(work_dir / "cache"), "create"]
                environment = {**os.environ, "HOME": str(work_dir)}
                before = len(captured)
                result = await asyncio.to_thread(subprocess.run, base + arguments, cwd=work_dir,
                                                 env=environment, capture_output=True, text=True)
                if result.returncode != 0 or len(captured) != before + 1:
                    raise SystemExit(f"{name}: kubectl failed: {result.stderr or result.stdout}")
                request = captured[-1]
                (FIXTURES / f"{name}.bin").write_bytes(request["body"])
                dry_run = await asyncio.to_thread(subprocess.run, base + with_dry_run(arguments),
                                                  cwd=work_dir, env=environment,
                                                  capture_output=True, text=True)
                if dry_run.returncode != 0:
                    raise SystemExit(f"{name}: dry run failed: {dry_run.stderr}")
                (FIXTURES / f"{name}.json").write_text(dry_run.stdout)
                index[name] = {"args": ["create", *arguments], "path": request["path"],
                               "content_type": request["content_type"]}
                print(f"{name}: {len(request['body'])} bytes to {request['path']}")
        finally:
            await runner.cleanup()
    version = subprocess.run([str(kubectl), "version", "--client", "-o", "json"],
                             capture_output=True, text=True).stdout
    index_document = {"kubectl": json.loads(version).get("clientVersion", {}).get("gitVersion"),
                      "commands": index}
    (FIXTURES / "commands.json").write_text(json.dumps(index_document, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(capture(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_KUBECTL))
