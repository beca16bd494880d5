"""ServiceAccount tokens: signing, claims, keys on disk and their rotation, the
authenticator's verdicts (every bad token is 'not authenticated', never an error), the
kubelet's refresh rule and the admission plugin's volume."""

from __future__ import annotations

import asyncio
import base64
import copy

import orjson
import pytest

from pyk8s.api import errors
from pyk8s.api import serviceaccounttoken as satoken
from pyk8s.apiserver import serviceaccounts
from pyk8s.apiserver.authn import RequestAuthenticator
from pyk8s.cluster.serviceaccountkeys import load_service_account_keys, rotate_service_account_key
from pyk8s.kubelet.volumes.serviceaccounttoken import TokenManager, requires_refresh

ISSUER = satoken.DEFAULT_ISSUER
NOW = 1_800_000_000


class FakeRegistry:
    """registry.get over a dict of (plural, namespace, name) -> object."""

    def __init__(self, *objects):
        self.objects = {}
        for plural, obj in objects:
            self.add(plural, obj)

    def add(self, plural, obj):
        self.objects[(plural, obj["metadata"].get("namespace"), obj["metadata"]["name"])] = obj

    def remove(self, plural, namespace, name):
        self.objects.pop((plural, namespace, name))

    async def get(self, resource, namespace, name, resource_version=""):
        try:
            return copy.deepcopy(self.objects[(resource.plural, namespace if resource.namespaced else None, name)])
        except KeyError:
            raise errors.NotFound.of(resource.group, resource.plural, name) from None


def account(name="app", namespace="default", uid="sa-uid", **fields):
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace, "uid": uid}, **fields}


def pod(name="web", namespace="default", uid="pod-uid", account_name="app", node="node-1"):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "uid": uid},
            "spec": {"serviceAccountName": account_name, "nodeName": node,
                     "containers": [{"name": "c", "image": "busybox"}]}}


def node(name="node-1", uid="node-uid"):
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "uid": uid}}


@pytest.fixture
def keys(tmp_path):
    return load_service_account_keys(tmp_path)


@pytest.fixture
def registry():
    return FakeRegistry(("serviceaccounts", account()), ("pods", pod()), ("nodes", node()))


def request_token(registry, keys, spec=None, now=NOW, name="app"):
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec or {}}
    return asyncio.run(serviceaccounts.create_token(registry, keys, ISSUER, [ISSUER], "default", name, body, now=now))


def authenticate(registry, keys, token, now=NOW + 10):
    authenticator = serviceaccounts.ServiceAccountTokenAuthenticator(registry, keys, issuer=ISSUER,
                                                                     cache_seconds=0, now=lambda: now)
    return asyncio.run(authenticator.authenticate(token))


def claims_of(token):
    return orjson.loads(satoken.b64url_decode(token.split(".")[1]))


def test_a_pod_bound_token_carries_upstreams_claims(registry, keys):
    answer = request_token(registry, keys, {"expirationSeconds": 3607,
                                            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "pod-uid"}})
    token = answer["status"]["token"]
    header = orjson.loads(satoken.b64url_decode(token.split(".")[0]))
    assert header == {"alg": "ES256", "kid": satoken.key_id(keys.signing_key.public_key())}
    claims = claims_of(token)
    assert claims["iss"] == ISSUER and claims["aud"] == [ISSUER]
    assert claims["sub"] == "system:serviceaccount:default:app"
    assert claims["exp"] == NOW + 3607 and claims["iat"] == claims["nbf"] == NOW
    assert claims["kubernetes.io"] == {"namespace": "default", "node": {"name": "node-1", "uid": "node-uid"},
                                       "pod": {"name": "web", "uid": "pod-uid"},
                                       "serviceaccount": {"name": "app", "uid": "sa-uid"}}
    assert len(claims["jti"]) == 36
    assert answer["status"]["expirationTimestamp"] == "2027-01-15T09:00:07Z"
    assert answer["kind"] == "TokenRequest" and answer["spec"]["audiences"] == [ISSUER]


def test_a_bound_token_authenticates_as_the_account_with_pod_extras(registry, keys):
    token = request_token(registry, keys, {"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web"}})["status"]["token"]
    name, groups, uid, extra = authenticate(registry, keys, token)
    assert name == "system:serviceaccount:default:app"
    assert groups == ("system:serviceaccounts", "system:serviceaccounts:default")
    assert uid == "sa-uid"
    extra = dict(extra)
    assert extra["authentication.kubernetes.io/pod-name"] == ("web",)
    assert extra["authentication.kubernetes.io/pod-uid"] == ("pod-uid",)
    assert extra["authentication.kubernetes.io/node-name"] == ("node-1",)
    assert extra["authentication.kubernetes.io/credential-id"][0].startswith("JTI=")


def test_the_request_authenticator_adds_system_authenticated(registry, keys):
    import time
    token = request_token(registry, keys, now=time.time())["status"]["token"]
    authenticator = RequestAuthenticator(registry, serviceaccounts.ServiceAccountTokenAuthenticator(registry, keys))
    user = asyncio.run(authenticator.authenticate("GET", "/api/v1/pods", None, f"Bearer {token}"))
    assert user.name == "system:serviceaccount:default:app"
    assert user.groups == ("system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated")
    assert asyncio.run(authenticator.authenticate("GET", "/api", None, "Bearer " + token[:-4] + "AAAA")) is None


@pytest.mark.parametrize("token", [
    "", "a.b", "a.b.c", "...", "x" * 70000, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
    "eyJhbGciOiJFUzI1NiJ9.bm90IGpzb24.AAAA", "\u00e9.\u00e9.\u00e9", "e30.e30.e30", "W10.W10.W10",
])
def test_malformed_tokens_are_not_authenticated(registry, keys, token):
    assert authenticate(registry, keys, token) is None


def test_expired_and_not_yet_valid_tokens_are_refused(registry, keys):
    token = request_token(registry, keys, {"expirationSeconds": 600})["status"]["token"]
    assert authenticate(registry, keys, token, now=NOW + 599) is not None
    assert authenticate(registry, keys, token, now=NOW + 600) is None
    assert authenticate(registry, keys, token, now=NOW - 5) is None


def test_a_token_signed_by_another_key_is_refused(registry, keys, tmp_path):
    other = load_service_account_keys(tmp_path / "other")
    token = request_token(registry, other)["status"]["token"]
    assert authenticate(registry, keys, token) is None
    # Same kid, another key's signature: still refused.
    header, payload, _ = token.split(".")
    forged_header = satoken.b64url(orjson.dumps({"alg": "ES256", "kid": satoken.key_id(keys.signing_key.public_key())}))
    forged = satoken.sign(other.signing_key, claims_of(token)).split(".")[2]
    assert authenticate(registry, keys, f"{forged_header}.{payload}.{forged}") is None


def test_tampered_claims_break_the_signature(registry, keys):
    token = request_token(registry, keys)["status"]["token"]
    header, payload, signature = token.split(".")
    claims = claims_of(token)
    claims["sub"] = "system:serviceaccount:kube-system:admin"
    assert authenticate(registry, keys, f"{header}.{satoken.b64url(orjson.dumps(claims))}.{signature}") is None


def test_alg_none_and_hmac_are_refused(registry, keys):
    token = request_token(registry, keys)["status"]["token"]
    _, payload, _ = token.split(".")
    for alg in ("none", "HS256", "RS256"):
        header = satoken.b64url(orjson.dumps({"alg": alg}))
        assert authenticate(registry, keys, f"{header}.{payload}.") is None
        assert authenticate(registry, keys, f"{header}.{payload}.{'A' * 86}") is None


def test_a_token_for_another_audience_is_refused(registry, keys):
    token = request_token(registry, keys, {"audiences": ["vault"]})["status"]["token"]
    assert claims_of(token)["aud"] == ["vault"]
    assert authenticate(registry, keys, token) is None


def test_deleting_the_bound_pod_or_the_account_invalidates_the_token(registry, keys):
    token = request_token(registry, keys, {"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web"}})["status"]["token"]
    assert authenticate(registry, keys, token) is not None
    registry.add("pods", pod(uid="another-uid"))  # deleted and re-created: another pod
    assert authenticate(registry, keys, token) is None
    registry.remove("pods", "default", "web")
    assert authenticate(registry, keys, token) is None

    plain = request_token(registry, keys)["status"]["token"]
    assert authenticate(registry, keys, plain) is not None
    registry.add("serviceaccounts", account(uid="new-uid"))
    assert authenticate(registry, keys, plain) is None


def test_a_terminating_pods_token_works_for_a_minute_past_its_deletion(registry, keys):
    token = request_token(registry, keys, {"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web"}})["status"]["token"]
    terminating = pod()
    terminating["metadata"]["deletionTimestamp"] = "2027-01-15T08:00:00Z"  # NOW
    registry.add("pods", terminating)
    assert authenticate(registry, keys, token, now=NOW + 59) is not None
    assert authenticate(registry, keys, token, now=NOW + 61) is None


def test_the_authenticator_cache_expires_with_the_token(registry, keys):
    token = request_token(registry, keys, {"expirationSeconds": 600})["status"]["token"]
    clock = {"now": NOW + 599.5}
    authenticator = serviceaccounts.ServiceAccountTokenAuthenticator(registry, keys, cache_seconds=60,
                                                                     now=lambda: clock["now"])
    assert asyncio.run(authenticator.authenticate(token)) is not None
    clock["now"] = NOW + 601
    assert asyncio.run(authenticator.authenticate(token)) is None


@pytest.mark.parametrize("spec, error, message", [
    ({"expirationSeconds": 60}, errors.Invalid, "spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"),
    ({"expirationSeconds": (1 << 32) + 1}, errors.Invalid, "may not specify a duration larger than 2^32 seconds"),
    ({"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "nope"}}, errors.NotFound, 'pods "nope" not found'),
    ({"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "wrong"}}, errors.Conflict,
     "the UID in the bound object reference (wrong) does not match the UID in record"),
    ({"boundObjectRef": {"apiVersion": "v1", "kind": "ConfigMap", "name": "x"}}, errors.BadRequest,
     'cannot bind token for serviceaccount "app" to object of type /v1, Kind=ConfigMap'),
])
def test_token_requests_are_checked_as_upstream(registry, keys, spec, error, message):
    with pytest.raises(error) as raised:
        request_token(registry, keys, spec)
    assert message in str(raised.value.status())


def test_a_pod_of_another_account_cannot_get_this_accounts_token(registry, keys):
    registry.add("pods", pod(name="other", uid="other-uid", account_name="default"))
    with pytest.raises(errors.BadRequest, match="pod running with different serviceaccount name"):
        request_token(registry, keys, {"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "other"}})
    with pytest.raises(errors.NotFound, match='serviceaccounts "ghost" not found'):
        request_token(registry, keys, name="ghost")


def test_secret_and_node_bound_tokens(registry, keys):
    registry.add("secrets", {"metadata": {"name": "s", "namespace": "default", "uid": "secret-uid"}, "type": "Opaque"})
    token = request_token(registry, keys, {"boundObjectRef": {"apiVersion": "v1", "kind": "Secret", "name": "s"}})["status"]["token"]
    assert claims_of(token)["kubernetes.io"]["secret"] == {"name": "s", "uid": "secret-uid"}
    assert authenticate(registry, keys, token) is not None
    registry.remove("secrets", "default", "s")
    assert authenticate(registry, keys, token) is None

    token = request_token(registry, keys, {"boundObjectRef": {"apiVersion": "v1", "kind": "Node", "name": "node-1"}})["status"]["token"]
    assert claims_of(token)["kubernetes.io"]["node"] == {"name": "node-1", "uid": "node-uid"}
    assert dict(authenticate(registry, keys, token)[3])["authentication.kubernetes.io/node-name"] == ("node-1",)
    registry.remove("nodes", None, "node-1")
    assert authenticate(registry, keys, token) is None


def test_legacy_tokens_are_valid_while_their_secret_holds_them(registry, keys):
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
              "metadata": {"name": "app-token", "namespace": "default",
                           "annotations": {"kubernetes.io/service-account.name": "app"}}}
    token = keys.sign(satoken.legacy_claims(account(), secret))
    claims = claims_of(token)
    assert claims == {"iss": "kubernetes/serviceaccount", "kubernetes.io/serviceaccount/namespace": "default",
                      "kubernetes.io/serviceaccount/secret.name": "app-token",
                      "kubernetes.io/serviceaccount/service-account.name": "app",
                      "kubernetes.io/serviceaccount/service-account.uid": "sa-uid",
                      "sub": "system:serviceaccount:default:app"}
    assert authenticate(registry, keys, token) is None  # no Secret holds it yet
    secret["data"] = {"token": base64.b64encode(token.encode()).decode()}
    registry.add("secrets", secret)
    assert authenticate(registry, keys, token, now=NOW + 10 * 365 * 86400)[0] == "system:serviceaccount:default:app"
    secret["data"] = {"token": base64.b64encode(b"something else").decode()}
    registry.add("secrets", secret)
    assert authenticate(registry, keys, token) is None


def test_keys_survive_a_restart_and_rotation_keeps_old_tokens_valid(registry, tmp_path):
    first = load_service_account_keys(tmp_path)
    old_token = request_token(registry, first)["status"]["token"]
    again = load_service_account_keys(tmp_path)
    assert satoken.key_id(again.signing_key.public_key()) == satoken.key_id(first.signing_key.public_key())
    assert (tmp_path / "service.current.key").stat().st_mode & 0o777 == 0o600

    rotated = rotate_service_account_key(tmp_path)
    assert satoken.key_id(rotated.signing_key.public_key()) != satoken.key_id(first.signing_key.public_key())
    assert len(rotated.public_keys) == 2
    assert satoken.key_id(rotated.public_keys[0]) == satoken.key_id(rotated.signing_key.public_key())
    new_token = request_token(registry, rotated)["status"]["token"]
    restarted = load_service_account_keys(tmp_path)
    assert authenticate(registry, restarted, old_token) is not None
    assert authenticate(registry, restarted, new_token) is not None
    # Dropping the old public key from the bundle ends the old tokens.
    (tmp_path / "service.key").write_bytes(
        b"-----BEGIN PUBLIC KEY-----" + (tmp_path / "service.key").read_bytes().split(b"-----BEGIN PUBLIC KEY-----")[-1])
    trimmed = load_service_account_keys(tmp_path)
    assert authenticate(registry, trimmed, old_token) is None
    assert authenticate(registry, trimmed, new_token) is not None


def test_discovery_documents(keys):
    document = serviceaccounts.discovery_document(ISSUER)
    assert document == {"issuer": ISSUER, "jwks_uri": ISSUER + "/openid/v1/jwks",
                        "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["ES256"]}
    (key,) = satoken.jwks(keys.public_keys)["keys"]
    assert key["kty"] == "EC" and key["crv"] == "P-256" and key["use"] == "sig" and key["alg"] == "ES256"
    assert key["kid"] == satoken.key_id(keys.signing_key.public_key())
    assert len(satoken.b64url_decode(key["x"])) == 32


def test_kubelet_refreshes_at_80_percent_or_after_a_day():
    expires = NOW + 3607
    assert not requires_refresh(3607, expires, NOW + 2800, jitter=0)
    assert requires_refresh(3607, expires, NOW + 2890, jitter=0)
    assert requires_refresh(3607, expires, NOW + 2880, jitter=10)
    year = 365 * 86400
    assert not requires_refresh(year, NOW + year, NOW + 86000, jitter=0)
    assert requires_refresh(year, NOW + year, NOW + 86401, jitter=0)


def test_token_manager_asks_again_only_when_a_refresh_is_due():
    class Client:
        def __init__(self):
            self.requests = []

        async def request(self, method, path, body=None, **_):
            self.requests.append((method, path, body))
            return {"spec": {"expirationSeconds": body["spec"]["expirationSeconds"]},
                    "status": {"token": f"token-{len(self.requests)}",
                               "expirationTimestamp": _rfc3339(clock["now"] + body["spec"]["expirationSeconds"])}}

    import time
    def _rfc3339(seconds):
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))

    clock = {"now": NOW}
    client = Client()
    manager = TokenManager(client, now=lambda: clock["now"], jitter=lambda: 0)
    get = lambda: asyncio.run(manager.token("default", "app", "web", "pod-uid", "", 3607))  # noqa: E731
    assert get() == "token-1"
    method, path, body = client.requests[0]
    assert (method, path) == ("POST", "/api/v1/namespaces/default/serviceaccounts/app/token")
    assert body["spec"] == {"expirationSeconds": 3607,
                            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "pod-uid"}}
    clock["now"] = NOW + 2800
    assert get() == "token-1"
    clock["now"] = NOW + 2900
    assert get() == "token-2"


def test_admission_adds_the_token_volume_to_every_container():
    registry = FakeRegistry(("serviceaccounts", account(name="default", imagePullSecrets=[{"name": "regcred"}])))
    new_pod = pod(account_name="")
    new_pod["spec"]["initContainers"] = [{"name": "init", "image": "busybox"}]
    asyncio.run(serviceaccounts.admit_pod(registry, new_pod))
    spec = new_pod["spec"]
    assert spec["serviceAccountName"] == spec["serviceAccount"] == "default"
    (volume,) = spec["volumes"]
    assert volume["name"].startswith("kube-api-access-") and len(volume["name"]) == len("kube-api-access-") + 5
    assert volume["projected"] == {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}
    for container in spec["containers"] + spec["initContainers"]:
        assert container["volumeMounts"] == [{"name": volume["name"], "readOnly": True,
                                              "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]


def test_admission_honours_automount_false_on_pod_or_account():
    registry = FakeRegistry(("serviceaccounts", account(automountServiceAccountToken=False)))
    quiet = pod()
    asyncio.run(serviceaccounts.admit_pod(registry, quiet))
    assert "volumes" not in quiet["spec"] or not quiet["spec"]["volumes"]
    loud = pod()
    loud["spec"]["automountServiceAccountToken"] = True
    asyncio.run(serviceaccounts.admit_pod(registry, loud))
    assert len(loud["spec"]["volumes"]) == 1


def test_admission_refuses_a_pod_naming_a_missing_account():
    with pytest.raises(errors.Forbidden) as raised:
        asyncio.run(serviceaccounts.admit_pod(FakeRegistry(), pod(account_name="ghost")))
    assert raised.value.message == ('pods "web" is forbidden: error looking up service account default/ghost: '
                                    'serviceaccount "ghost" not found')
