"""Bootstrap-token authentication and the node-token format, without a server: the
authenticator reads Secrets from a stand-in registry and a clock the test moves."""

from __future__ import annotations

import asyncio
import base64
import datetime

import pytest

from pyk8s.api import errors
from pyk8s.apiserver import authn
from pyk8s.apiserver.bootstrap import (NODE_TOKEN_GROUP, bootstrap_token_secret, cluster_info_kubeconfig,
                                       ensure_node_join_token)
from pyk8s.client.nodetoken import (NodeTokenError, ca_from_cluster_info, ca_hash, format_node_token,
                                    parse_node_token)

TOKEN_ID, TOKEN_SECRET = "abcdef", "0123456789abcdef"
NOW = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)


class SecretsOnly:
    """The registry calls the authenticator and the node-token bootstrap make."""

    def __init__(self):
        self.secrets: dict[str, dict] = {}
        self.reads = 0

    async def get(self, resource, namespace, name):
        self.reads += 1
        assert (resource.plural, namespace) == ("secrets", "kube-system")
        if name not in self.secrets:
            raise errors.NotFound.of("", "secrets", name)
        return self.secrets[name]

    async def list(self, resource, namespace, options):
        return list(self.secrets.values()), 1, "", None

    async def create(self, resource, namespace, obj):
        name = obj["metadata"]["name"]
        if name in self.secrets:
            raise errors.AlreadyExists.of("", "secrets", name)
        self.secrets[name] = obj
        return obj


class Clock:
    def __init__(self):
        self.value = 100.0

    def __call__(self) -> float:
        return self.value


def token_secret(**overrides) -> dict:
    secret = bootstrap_token_secret(TOKEN_ID, TOKEN_SECRET, description="test",
                                    extra_groups=["system:bootstrappers:pyk8s:default-node-token"])
    for key, value in overrides.items():
        if value is None:
            secret["data"].pop(key, None)
        else:
            secret["data"][key] = base64.b64encode(value.encode()).decode()
    return secret


def authenticate(registry, token: str, clock=None):
    authenticator = authn.BootstrapTokenAuthenticator(registry, clock=clock or Clock(), now=lambda: NOW)
    return asyncio.run(authenticator.authenticate(token))


def test_valid_token_is_the_bootstrap_user_with_its_extra_groups():
    registry = SecretsOnly()
    registry.secrets["bootstrap-token-abcdef"] = token_secret()
    user = authenticate(registry, f"{TOKEN_ID}.{TOKEN_SECRET}")
    assert user == authn.UserInfo("system:bootstrap:abcdef",
                                  ("system:bootstrappers", "system:bootstrappers:pyk8s:default-node-token"))


@pytest.mark.parametrize("token", [
    "abcdef.0123456789abcdee",  # wrong secret
    "zzzzzz.0123456789abcdef",  # unknown id
    "abcdef.0123456789ABCDEF",  # upper case is not a token
    "abcdef0123456789abcdef",
    "abcdef.0123456789abcdef.x",
    "",
])
def test_wrong_or_malformed_tokens_are_rejected(token):
    registry = SecretsOnly()
    registry.secrets["bootstrap-token-abcdef"] = token_secret()
    assert authenticate(registry, token) is None


@pytest.mark.parametrize("overrides, accepted", [
    ({"expiration": "2029-12-31T23:59:59Z"}, False),
    ({"expiration": "2030-01-01T00:00:01Z"}, True),
    ({"expiration": "2030-01-01T01:00:01+01:00"}, True),
    ({"expiration": "next tuesday"}, False),  # unparsable: expired, as upstream
    ({"usage-bootstrap-authentication": "false"}, False),
    ({"usage-bootstrap-authentication": None}, False),
    ({"token-id": "ghijkl"}, False),  # the Secret must name the same id
    ({"auth-extra-groups": "system:masters"}, False),  # a token cannot claim admin groups
    ({"auth-extra-groups": "system:bootstrappers:a, system:bootstrappers:b"}, True),
])
def test_the_secret_decides_whether_its_token_authenticates(overrides, accepted):
    registry = SecretsOnly()
    registry.secrets["bootstrap-token-abcdef"] = token_secret(**overrides)
    assert (authenticate(registry, f"{TOKEN_ID}.{TOKEN_SECRET}") is not None) == accepted


def test_a_secret_of_another_type_or_being_deleted_does_not_authenticate():
    registry = SecretsOnly()
    registry.secrets["bootstrap-token-abcdef"] = dict(token_secret(), type="Opaque")
    assert authenticate(registry, f"{TOKEN_ID}.{TOKEN_SECRET}") is None
    deleting = token_secret()
    deleting["metadata"]["deletionTimestamp"] = "2029-01-01T00:00:00Z"
    registry.secrets["bootstrap-token-abcdef"] = deleting
    assert authenticate(registry, f"{TOKEN_ID}.{TOKEN_SECRET}") is None


def test_secrets_are_cached_for_the_cache_window_then_read_again():
    registry = SecretsOnly()
    registry.secrets["bootstrap-token-abcdef"] = token_secret()
    clock = Clock()
    authenticator = authn.BootstrapTokenAuthenticator(registry, cache_seconds=2.0, clock=clock, now=lambda: NOW)
    token = f"{TOKEN_ID}.{TOKEN_SECRET}"

    async def scenario():
        assert await authenticator.authenticate(token) is not None
        assert await authenticator.authenticate(token) is not None
        assert registry.reads == 1
        del registry.secrets["bootstrap-token-abcdef"]
        clock.value += 1.9
        assert await authenticator.authenticate(token) is not None  # still cached
        clock.value += 0.2
        assert await authenticator.authenticate(token) is None  # read again: gone
        assert registry.reads == 2
        # A wrong secret never passes, cached Secret or not.
        registry.secrets["bootstrap-token-abcdef"] = token_secret()
        clock.value += 2.1
        assert await authenticator.authenticate(f"{TOKEN_ID}.0123456789abcdee") is None
        assert await authenticator.authenticate(token) is not None
    asyncio.run(scenario())


def test_the_cache_stays_bounded_under_unknown_ids():
    registry = SecretsOnly()
    authenticator = authn.BootstrapTokenAuthenticator(registry, clock=Clock(), now=lambda: NOW)

    async def scenario():
        for number in range(authn.CACHE_ENTRIES * 3):
            assert await authenticator.authenticate(f"{number:06d}.0123456789abcdef") is None
    asyncio.run(scenario())
    assert len(authenticator._secrets) <= authn.CACHE_ENTRIES


def test_request_authenticator_order_certificate_then_token_then_anonymous_discovery():
    registry = SecretsOnly()
    registry.secrets["bootstrap-token-abcdef"] = token_secret()
    requests = authn.RequestAuthenticator(registry, clock=Clock(), now=lambda: NOW)
    certificate = {"subject": ((("organizationName", "system:masters"),), (("commonName", "admin"),))}
    pods = "/api/v1/namespaces/default/pods"

    def who(method, path, peercert=None, authorization=None):
        return asyncio.run(requests.authenticate(method, path, peercert, authorization))

    assert who("GET", pods, certificate, "Bearer nonsense") == authn.UserInfo("admin", ("system:masters",))
    assert who("GET", pods, None, f"Bearer {TOKEN_ID}.{TOKEN_SECRET}").name == "system:bootstrap:abcdef"
    assert who("GET", pods, None, f"bearer  {TOKEN_ID}.{TOKEN_SECRET} ").name == "system:bootstrap:abcdef"
    for header in ("Bearer", "Bearer ", f"Basic {TOKEN_ID}.{TOKEN_SECRET}", "Bearer abcdef.0123456789abcdee"):
        assert who("GET", pods, None, header) is None, header
    assert who("GET", pods) is None
    assert who("GET", authn.CLUSTER_INFO_PATH) == authn.UserInfo("system:anonymous", ("system:unauthenticated",))
    # A bad token is refused even where anonymous access would be allowed.
    assert who("GET", authn.CLUSTER_INFO_PATH, None, "Bearer abcdef.0123456789abcdee") is None
    for method, path in (("POST", authn.CLUSTER_INFO_PATH), ("PUT", authn.CLUSTER_INFO_PATH),
                         ("DELETE", authn.CLUSTER_INFO_PATH), ("HEAD", authn.CLUSTER_INFO_PATH),
                         ("GET", authn.CLUSTER_INFO_PATH + "/"), ("GET", "/api/v1/namespaces/kube-public/configmaps"),
                         ("GET", "/api/v1/watch/namespaces/kube-public/configmaps/cluster-info"),
                         ("GET", "/api/v1/namespaces/kube-system/configmaps/cluster-info"), ("GET", "/version")):
        assert who(method, path) is None, (method, path)


def test_node_join_token_is_minted_once_and_read_back():
    registry = SecretsOnly()
    first = asyncio.run(ensure_node_join_token(registry))
    assert authn.TOKEN_PATTERN.fullmatch(first)
    token_id = first.split(".")[0]
    secret = registry.secrets[f"bootstrap-token-{token_id}"]
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    assert "expiration" not in secret["data"]
    assert authn.secret_string(secret, "description") == "pyk8s node join token"
    assert authn.secret_string(secret, "auth-extra-groups") == NODE_TOKEN_GROUP
    assert asyncio.run(ensure_node_join_token(registry)) == first
    # Revoked by deleting its Secret: the next start mints another.
    del registry.secrets[f"bootstrap-token-{token_id}"]
    assert asyncio.run(ensure_node_join_token(registry)) != first


def test_node_token_pins_the_ca_and_carries_the_credential():
    ca_pem = b"-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n"
    text = format_node_token(ca_pem, f"{TOKEN_ID}.{TOKEN_SECRET}")
    assert text == f"K10{ca_hash(ca_pem)}::{TOKEN_ID}.{TOKEN_SECRET}"
    token = parse_node_token(text + "\n")
    assert (token.ca_hash, token.credential) == (ca_hash(ca_pem), f"{TOKEN_ID}.{TOKEN_SECRET}")
    for malformed in (f"{TOKEN_ID}.{TOKEN_SECRET}", f"K10{ca_hash(ca_pem)[:-1]}::{TOKEN_ID}.{TOKEN_SECRET}",
                      f"K10{ca_hash(ca_pem)}:{TOKEN_ID}.{TOKEN_SECRET}", f"K10{ca_hash(ca_pem)}::{TOKEN_ID}"):
        with pytest.raises(NodeTokenError) as raised:
            parse_node_token(malformed)
        assert TOKEN_SECRET not in str(raised.value)


def test_cluster_info_kubeconfig_holds_the_ca_and_server_but_no_credentials():
    import yaml
    ca_pem = b"-----BEGIN CERTIFICATE-----\nnot really\n-----END CERTIFICATE-----\n"
    kubeconfig = cluster_info_kubeconfig("https://10.0.0.1:6443", ca_pem)
    assert ca_from_cluster_info({"data": {"kubeconfig": kubeconfig}}) == ca_pem
    parsed = yaml.safe_load(kubeconfig)
    assert parsed["clusters"][0]["cluster"]["server"] == "https://10.0.0.1:6443"
    assert not parsed.get("users") and "token" not in kubeconfig
    with pytest.raises(NodeTokenError):
        ca_from_cluster_info({"data": {}})
