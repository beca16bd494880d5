"""Joining a cluster with a node token: `K10<sha256 hex of the cluster CA PEM>::<id>.<secret>`
(k3s's shape: a pin of the cluster CA, then a bootstrap-token credential).

Discovery works like kubeadm's token discovery with a CA certificate hash: the node reads
the public ConfigMap kube-public/cluster-info without verifying TLS and without sending the
token, accepts the CA it holds only if its hash is the pinned one, and from then on talks to
the API verified against that CA, authenticating with the token. A server that does not
hold the cluster's CA never sees the token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass

import aiohttp
import orjson
import yaml

NODE_TOKEN_PREFIX = "K10"
CLUSTER_INFO_PATH = "/api/v1/namespaces/kube-public/configmaps/cluster-info"
_NODE_TOKEN_PATTERN = re.compile(r"K10([0-9a-f]{64})::([a-z0-9]{6}\.[a-z0-9]{16})")


class NodeTokenError(Exception):
    """The token is malformed or the server it names cannot be trusted with it."""


@dataclass(frozen=True)
class NodeToken:
    ca_hash: str  # sha256 hex of the CA certificate's PEM bytes
    credential: str  # the bootstrap token, <id>.<secret>

    def __str__(self) -> str:
        return f"{NODE_TOKEN_PREFIX}{self.ca_hash}::{self.credential}"


def ca_hash(ca_pem: bytes) -> str:
    return hashlib.sha256(ca_pem).hexdigest()


def format_node_token(ca_pem: bytes, credential: str) -> str:
    return str(NodeToken(ca_hash(ca_pem), credential))


def parse_node_token(text: str) -> NodeToken:
    match = _NODE_TOKEN_PATTERN.fullmatch(text.strip())
    if match is None:
        # Never echo the token: it is a credential.
        raise NodeTokenError("malformed node token: expected K10<sha256 of the cluster CA, 64 hex digits>::"
                             "<6 characters [a-z0-9]>.<16 characters [a-z0-9]> (the server's <data-dir>/node-token)")
    return NodeToken(match.group(1), match.group(2))


def ca_from_cluster_info(config_map: dict) -> bytes:
    """The CA certificate (PEM bytes) in cluster-info's `kubeconfig` key."""
    try:
        kubeconfig = yaml.safe_load((config_map.get("data") or {})["kubeconfig"])
        cluster = kubeconfig["clusters"][0]["cluster"]
        return base64.b64decode(cluster["certificate-authority-data"], validate=True)
    except (KeyError, IndexError, TypeError, yaml.YAMLError, binascii.Error) as error:
        raise NodeTokenError(f"cluster-info holds no usable kubeconfig ({error.__class__.__name__}: {error})")


async def discover_cluster_ca(server: str, token: NodeToken, *, timeout: float = 30.0) -> bytes:
    """The cluster CA (PEM bytes) of `server`, read anonymously from cluster-info and
    accepted only if it matches the hash pinned in `token`."""
    url = server.rstrip("/") + CLUSTER_INFO_PATH
    # Nothing is trusted yet: no TLS verification, no credential sent.
    connector = aiohttp.TCPConnector(ssl=False)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.get(url, headers={"Accept": "application/json"}) as reply:
                body = await reply.read()
                if reply.status != 200:
                    raise NodeTokenError(f"GET {url}: HTTP {reply.status} {body[:200].decode(errors='replace')}")
    except (aiohttp.ClientError, OSError, TimeoutError) as error:
        raise NodeTokenError(f"cannot read cluster-info from {url}: {error or error.__class__.__name__}")
    try:
        config_map = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise NodeTokenError(f"GET {url}: the answer is not JSON")
    ca_pem = ca_from_cluster_info(config_map)
    found = ca_hash(ca_pem)
    if not hmac.compare_digest(found, token.ca_hash):
        raise NodeTokenError(f"the cluster CA served by {server} does not match the node token "
                             f"(CA sha256 {found}, token pins {token.ca_hash}): not sending the token")
    return ca_pem
