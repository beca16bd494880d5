"""Servers joining servers: the server token and the bootstrap endpoint (k3s's
`/v1-k3s/server-bootstrap`, here `/v1-pyk8s/server-bootstrap`).

The server token, `<data-dir>/server-token` (mode 0600), has k3s's shape
`K10<sha256 of the cluster CA PEM>::server:<secret>`. It is not the node token: agents join
with the node token (a bootstrap token that reaches the API only), servers with this one,
which hands out the cluster's private keys. A joining server
(`pyk8s server --server https://FIRST:6443 --token TOKEN`):
1. reads the public kube-public/cluster-info anonymously and accepts its CA only if its
   hash is the one pinned in the token (client/nodetoken.py), sending nothing secret;
2. GETs the bootstrap endpoint over TLS verified against that CA, authenticated with HTTP
   basic auth `server:<secret>` (k3s's), and receives the files every server must share:
   the cluster CA and its key, the ServiceAccount signing keys, the etcd CAs, the secrets
   encryption config, plus the client URLs of the etcd members;
3. writes them into its own data dir (keys 0600), then issues its own certificates with
   them, adds itself as an etcd member (cluster/embeddedetcd.py) and keeps the token as its
   own server-token, so it can let further servers join too.
Every server answers the endpoint; a wrong or missing secret gets 401 and nothing else.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import aiohttp
import orjson

from pyk8s.client.nodetoken import NodeToken, NodeTokenError, ca_hash, discover_cluster_ca
from pyk8s.cluster.files import write_file_atomic

SERVER_TOKEN_FILE = "server-token"
BOOTSTRAP_PATH = "/v1-pyk8s/server-bootstrap"
_SERVER_TOKEN_PATTERN = re.compile(r"K10([0-9a-f]{64})::server:([A-Za-z0-9]{16,128})")

# What every server of a cluster shares, relative to the data dir (k3s's bootstrap data).
SHARED_FILES = (
    "server/tls/ca.crt",
    "server/tls/ca.key",
    "server/tls/service.key",
    "server/tls/service.current.key",
    "server/tls/etcd/server-ca.crt",
    "server/tls/etcd/server-ca.key",
    "server/tls/etcd/peer-ca.crt",
    "server/tls/etcd/peer-ca.key",
    "server/cred/encryption-config.json",
)


@dataclass(frozen=True)
class ServerToken:
    ca_hash: str
    secret: str

    def __str__(self) -> str:
        return f"K10{self.ca_hash}::server:{self.secret}"


def parse_server_token(text: str) -> ServerToken:
    match = _SERVER_TOKEN_PATTERN.fullmatch(text.strip())
    if match is None:
        # Never echo the token: it is a credential.
        raise NodeTokenError("malformed server token: expected K10<sha256 of the cluster CA, 64 hex digits>::"
                             "server:<secret> (the first server's <data-dir>/server-token)")
    return ServerToken(match.group(1), match.group(2))


def server_token_path(data_dir: Path) -> Path:
    return Path(data_dir) / SERVER_TOKEN_FILE


def ensure_server_token(data_dir: Path, ca_pem: bytes) -> ServerToken:
    """The cluster's server token: the one in the data dir when it pins this CA, else a new
    secret. Written with mode 0600."""
    path = server_token_path(data_dir)
    try:
        token = parse_server_token(path.read_text())
        if hmac.compare_digest(token.ca_hash, ca_hash(ca_pem)):
            return token
    except (FileNotFoundError, NodeTokenError):
        pass
    token = ServerToken(ca_hash(ca_pem), secrets.token_hex(16))
    write_file_atomic(path, (str(token) + "\n").encode(), 0o600)
    return token


def keep_server_token(data_dir: Path, token: ServerToken) -> None:
    """A joined server keeps the token it joined with (so it can let others join)."""
    write_file_atomic(server_token_path(data_dir), (str(token) + "\n").encode(), 0o600)


def _basic_credential(secret: str) -> str:
    return "Basic " + base64.b64encode(f"server:{secret}".encode()).decode("ascii")


def authorized(header: str | None, token: ServerToken) -> bool:
    if not header or not header.startswith("Basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return user == "server" and hmac.compare_digest(password.encode(), token.secret.encode())


def bootstrap_payload(data_dir: Path, etcd_client_urls: list[str]) -> dict[str, Any]:
    files = {}
    for relative in SHARED_FILES:
        path = Path(data_dir) / relative
        if path.is_file():
            files[relative] = base64.b64encode(path.read_bytes()).decode("ascii")
    return {"files": files, "etcd": {"clientURLs": etcd_client_urls}}


def bootstrap_handler(data_dir: Path, token_source: Callable[[], ServerToken | None],
                      etcd_client_urls: Callable[[], list[str]]):
    """The aiohttp handler of BOOTSTRAP_PATH, which authenticates by itself (the API server
    passes the request on before its own authentication)."""
    from aiohttp import web

    async def handle(request) -> web.StreamResponse:
        token = token_source()
        if request.method != "GET":
            return web.Response(status=405, text="method not allowed\n")
        if token is None or not authorized(request.headers.get("Authorization"), token):
            return web.Response(status=401, text="Unauthorized\n", headers={"WWW-Authenticate": 'Basic realm="pyk8s"'})
        urls = etcd_client_urls()
        if not urls:
            return web.Response(status=503, text="this server runs no embedded etcd: start the first server "
                                                 "with --cluster-init\n")
        body = orjson.dumps(bootstrap_payload(data_dir, urls))
        return web.Response(body=body, headers={"Content-Type": "application/json", "Cache-Control": "no-store"})

    return handle


async def fetch_bootstrap(server_url: str, token: ServerToken, data_dir: Path, *, timeout: float = 30.0) -> list[str]:
    """Steps 1–3 of the module docstring: the shared files written into `data_dir`, the
    token kept; returns the etcd members' client URLs."""
    ca_pem = await discover_cluster_ca(server_url, NodeToken(token.ca_hash, ""), timeout=timeout)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cadata=ca_pem.decode("ascii"))
    url = server_url.rstrip("/") + BOOTSTRAP_PATH
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context),
                                         timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.get(url, headers={"Authorization": _basic_credential(token.secret)}) as reply:
                body = await reply.read()
                if reply.status != 200:
                    raise NodeTokenError(f"GET {url}: HTTP {reply.status} {body[:200].decode(errors='replace').strip()}")
    except (aiohttp.ClientError, OSError, TimeoutError) as error:
        raise NodeTokenError(f"cannot read the server bootstrap data from {url}: {error or error.__class__.__name__}")
    payload = orjson.loads(body)
    for relative, encoded in (payload.get("files") or {}).items():
        if relative not in SHARED_FILES:
            continue  # only the files we know where to put
        target = Path(data_dir) / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = 0o644 if relative.endswith(".crt") else 0o600
        write_file_atomic(target, base64.b64decode(encoded), mode)
    keep_server_token(data_dir, token)
    return list((payload.get("etcd") or {}).get("clientURLs") or [])
