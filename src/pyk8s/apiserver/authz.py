"""Authorization: who may do what, decided for every request after authentication.

Shape (upstream's `--authorization-mode=Node,RBAC` behind the privileged-group check):
- `Authorizer.authorize(attributes) -> (decision, reason)`: ALLOW, DENY or NO_OPINION.
- `AuthorizerChain`: the first ALLOW or DENY wins; the reasons of the others are joined.
  The chain is: members of `system:masters` (always allowed, as upstream), then the Node
  authorizer slot (`node_authorizer`, empty until it exists), then RBAC.
  `--authorization-mode AlwaysAllow` replaces all of it (benchmark baselines).
- `RBACIndex`: Roles, ClusterRoles and their bindings in memory, fed by a store watch on
  `/registry/rbac.authorization.k8s.io/`; bindings are indexed by subject (user name or
  group), and the rules a user holds in a namespace are cached until the next RBAC write,
  so a decision costs a few dict lookups however many roles exist.

Also here, because they ask the same questions: impersonation (`Impersonate-*` headers,
allowed with the `impersonate` verb), the access reviews (SubjectAccessReview,
LocalSubjectAccessReview, SelfSubjectAccessReview, SelfSubjectRulesReview) and
SelfSubjectReview, and the escalation checks on RBAC writes (a registry write hook: you
cannot grant what you do not hold, unless you have `escalate` or `bind`).

The user a request runs as is kept in `CURRENT_USER` (a context variable set per request),
which the write hook reads; writes made by the server itself have no user and are not
checked.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Iterable, Protocol

import orjson

from pyk8s.api import errors, rbac
from pyk8s.api.rbac import Attributes, User

log = logging.getLogger("pyk8s.apiserver.authz")

# kubectl sends the reviews as protobuf.
from pyk8s.api import reviewsprotobuf  # noqa: E402
reviewsprotobuf.register()

ALLOW, DENY, NO_OPINION = "Allow", "Deny", "NoOpinion"

RBAC_PREFIX = f"/registry/{rbac.RBAC_GROUP}/"
# The user a request runs as (after impersonation), shared with the identity-dependent
# admission steps (requestcontext.py).
from pyk8s.apiserver.requestcontext import current_user as CURRENT_USER  # noqa: E402

_CACHE_ENTRIES = 4096


class Authorizer(Protocol):
    def authorize(self, attributes: Attributes) -> tuple[str, str]: ...


class AlwaysAllow:
    def authorize(self, attributes: Attributes) -> tuple[str, str]:
        return ALLOW, ""

    def rules_for(self, user: User, namespace: str) -> tuple[list[dict], list[dict], bool]:
        return ([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                [{"verbs": ["*"], "nonResourceURLs": ["*"]}], False)


class PrivilegedGroups:
    """Members of these groups may do anything (upstream: system:masters, ahead of every
    other authorizer)."""

    def __init__(self, groups: Iterable[str] = (rbac.SYSTEM_MASTERS,)):
        self.groups = frozenset(groups)

    def authorize(self, attributes: Attributes) -> tuple[str, str]:
        if not self.groups.isdisjoint(attributes.user.groups):
            return ALLOW, ""
        return NO_OPINION, ""

    def rules_for(self, user: User, namespace: str) -> tuple[list[dict], list[dict], bool]:
        if self.groups.isdisjoint(user.groups):
            return [], [], False
        return AlwaysAllow().rules_for(user, namespace)


class AuthorizerChain:
    def __init__(self, authorizers: list[Any]):
        self.authorizers = authorizers

    def authorize(self, attributes: Attributes) -> tuple[str, str]:
        reasons = []
        for authorizer in self.authorizers:
            decision, reason = authorizer.authorize(attributes)
            if decision != NO_OPINION:
                return decision, reason
            if reason:
                reasons.append(reason)
        return NO_OPINION, "\n".join(reasons)

    def rules_for(self, user: User, namespace: str) -> tuple[list[dict], list[dict], bool]:
        resource_rules: list[dict] = []
        non_resource_rules: list[dict] = []
        incomplete = False
        for authorizer in self.authorizers:
            rules_for = getattr(authorizer, "rules_for", None)
            if rules_for is None:
                incomplete = True
                continue
            more_resource, more_non_resource, more_incomplete = rules_for(user, namespace)
            resource_rules += more_resource
            non_resource_rules += more_non_resource
            incomplete |= more_incomplete
        return resource_rules, non_resource_rules, incomplete


# ------------------------------------------------------------------ the RBAC index

def _describe_subject(subject: dict[str, Any], binding_namespace: str) -> str:
    if subject.get("kind") == "ServiceAccount":
        return f'ServiceAccount "{subject.get("name", "")}/{subject.get("namespace") or binding_namespace}"'
    return f'{subject.get("kind", "")} "{subject.get("name", "")}"'


class RBACIndex:
    """Roles, ClusterRoles and bindings by key, bindings by subject; `rules(user, ns)` is
    cached per (user, groups, namespace) and the cache is dropped on every change."""

    def __init__(self):
        self.roles: dict[tuple[str, str], list[dict]] = {}
        self.cluster_roles: dict[str, list[dict]] = {}
        # binding key -> (namespace or "", roleRef kind, roleRef name, subjects, name)
        self.bindings: dict[str, tuple[str, str, str, list[dict], str]] = {}
        # subject key -> binding keys; role bindings also by namespace
        self.cluster_subjects: dict[tuple[str, str], set[str]] = {}
        self.namespace_subjects: dict[tuple[str, tuple[str, str]], set[str]] = {}
        self._rules_cache: dict[tuple, tuple[list[tuple[dict, str]], list[str]]] = {}
        self._decisions: dict[tuple, bool] = {}
        self.revision = 0
        self.changed = asyncio.Event() if _loop_running() else None

    # -- feeding

    def apply(self, key: str, value: bytes | None) -> None:
        """A stored object under RBAC_PREFIX changed (value None: deleted)."""
        rest = key[len(RBAC_PREFIX):]
        plural, _, tail = rest.partition("/")
        obj = orjson.loads(value) if value is not None else None
        if plural == "roles":
            namespace, _, name = tail.partition("/")
            if obj is None:
                self.roles.pop((namespace, name), None)
            else:
                self.roles[(namespace, name)] = list(obj.get("rules") or [])
        elif plural == "clusterroles":
            if obj is None:
                self.cluster_roles.pop(tail, None)
            else:
                self.cluster_roles[tail] = list(obj.get("rules") or [])
        elif plural in ("rolebindings", "clusterrolebindings"):
            self._unindex_binding(key)
            if obj is not None:
                namespace = tail.partition("/")[0] if plural == "rolebindings" else ""
                name = tail.partition("/")[2] if plural == "rolebindings" else tail
                ref = obj.get("roleRef") or {}
                subjects = [s for s in obj.get("subjects") or [] if isinstance(s, dict)]
                self.bindings[key] = (namespace, ref.get("kind", ""), ref.get("name", ""), subjects, name)
                for subject in subjects:
                    subject_key = rbac.subject_keys(subject, namespace)
                    if subject_key is None:
                        continue
                    if namespace:
                        self.namespace_subjects.setdefault((namespace, subject_key), set()).add(key)
                    else:
                        self.cluster_subjects.setdefault(subject_key, set()).add(key)
        else:
            return
        self._rules_cache.clear()
        self._decisions.clear()

    def _unindex_binding(self, key: str) -> None:
        old = self.bindings.pop(key, None)
        if old is None:
            return
        namespace, _, _, subjects, _ = old
        for subject in subjects:
            subject_key = rbac.subject_keys(subject, namespace)
            if subject_key is None:
                continue
            index_key: Any = (namespace, subject_key) if namespace else subject_key
            table: dict = self.namespace_subjects if namespace else self.cluster_subjects
            keys = table.get(index_key)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del table[index_key]

    # -- reading

    def _role_rules(self, kind: str, name: str, namespace: str) -> list[dict] | None:
        if kind == "ClusterRole":
            return self.cluster_roles.get(name)
        if kind == "Role":
            return self.roles.get((namespace, name))
        return None

    def rules(self, user: User, namespace: str) -> tuple[list[tuple[dict, str]], list[str]]:
        """[(rule, where it comes from)] and resolution errors (a binding to a missing role)."""
        cache_key = (user.name, user.groups, namespace)
        cached = self._rules_cache.get(cache_key)
        if cached is not None:
            return cached
        found: list[tuple[dict, str]] = []
        problems: list[str] = []
        keys = rbac.user_keys(user)
        binding_keys: list[str] = []
        for subject_key in keys:
            binding_keys.extend(sorted(self.cluster_subjects.get(subject_key, ())))
        if namespace:
            for subject_key in keys:
                binding_keys.extend(sorted(self.namespace_subjects.get((namespace, subject_key), ())))
        seen = set()
        for binding_key in binding_keys:
            if binding_key in seen:
                continue
            seen.add(binding_key)
            binding_namespace, kind, role_name, subjects, name = self.bindings[binding_key]
            rules = self._role_rules(kind, role_name, binding_namespace)
            if rules is None:
                problem = (f'clusterrole.rbac.authorization.k8s.io "{role_name}" not found' if kind == "ClusterRole"
                           else f'role.rbac.authorization.k8s.io "{role_name}" not found')
                if problem not in problems:
                    problems.append(problem)
                continue
            subject = next((s for s in subjects if rbac.subject_applies(s, user, binding_namespace)), {})
            if binding_namespace:
                source = (f'RoleBinding "{name}/{binding_namespace}" of {kind} "{role_name}" to '
                          f"{_describe_subject(subject, binding_namespace)}")
            else:
                source = f'ClusterRoleBinding "{name}" of {kind} "{role_name}" to {_describe_subject(subject, "")}'
            found.extend((rule, source) for rule in rules)
        if len(self._rules_cache) >= _CACHE_ENTRIES:
            self._rules_cache.clear()
        self._rules_cache[cache_key] = (found, problems)
        return found, problems


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False


class RBACAuthorizer:
    def __init__(self, index: RBACIndex):
        self.index = index

    def authorize(self, attributes: Attributes) -> tuple[str, str]:
        user = attributes.user
        decision_key = (user.name, user.groups, attributes.verb, attributes.resource_request, attributes.api_group,
                        attributes.resource, attributes.subresource, attributes.namespace, attributes.name,
                        attributes.path)
        decisions = self.index._decisions
        known = decisions.get(decision_key)
        if known is True:
            return ALLOW, ""
        rules, problems = self.index.rules(user, attributes.namespace)
        for rule, _ in rules:
            if rbac.rule_allows(attributes, rule):
                if len(decisions) >= _CACHE_ENTRIES:
                    decisions.clear()
                decisions[decision_key] = True
                return ALLOW, ""
        return NO_OPINION, ("RBAC: " + ", ".join(problems)) if len(problems) == 1 else \
            (f"RBAC: [{', '.join(problems)}]" if problems else "")

    def explain(self, attributes: Attributes) -> tuple[str, str]:
        """authorize() with upstream's reasons on ALLOW too (for access reviews)."""
        rules, problems = self.index.rules(attributes.user, attributes.namespace)
        for rule, source in rules:
            if rbac.rule_allows(attributes, rule):
                return ALLOW, f"RBAC: allowed by {source}"
        return self.authorize(attributes)

    def rules_for(self, user: User, namespace: str) -> tuple[list[dict], list[dict], bool]:
        rules, problems = self.index.rules(user, namespace)
        resource_rules, non_resource_rules = [], []
        for rule, _ in rules:
            if rule.get("nonResourceURLs"):
                non_resource_rules.append({"verbs": list(rule.get("verbs") or []),
                                           "nonResourceURLs": list(rule["nonResourceURLs"])})
            else:
                entry = {"verbs": list(rule.get("verbs") or []), "apiGroups": list(rule.get("apiGroups") or []),
                         "resources": list(rule.get("resources") or [])}
                if rule.get("resourceNames"):
                    entry["resourceNames"] = list(rule["resourceNames"])
                resource_rules.append(entry)
        return resource_rules, non_resource_rules, bool(problems)

    def owner_rules(self, user: User, namespace: str) -> list[dict]:
        return [rule for rule, _ in self.index.rules(user, namespace)[0]]


# ------------------------------------------------------------------ users and requests

def request_user(name: str, groups: Iterable[str], extra: dict | None = None, uid: str = "") -> User:
    """The authenticated user as authorization sees it: every user but the anonymous one is
    in system:authenticated (upstream's AuthenticatedGroupAdder)."""
    groups = tuple(groups)
    if name != rbac.ANONYMOUS and rbac.AUTHENTICATED not in groups and rbac.UNAUTHENTICATED not in groups:
        groups = groups + (rbac.AUTHENTICATED,)
    return User(name, groups, extra or {}, uid)


def forbidden(attributes: Attributes, reason: str = "") -> errors.Forbidden:
    message, details = rbac.forbidden_status_parts(attributes, reason)
    return errors.Forbidden(message, details=details)


IMPERSONATE_USER = "Impersonate-User"
IMPERSONATE_GROUP = "Impersonate-Group"
IMPERSONATE_UID = "Impersonate-Uid"
IMPERSONATE_EXTRA_PREFIX = "Impersonate-Extra-"


class Authorization:
    """What the API server holds: the chain, the RBAC index (fed by a store watch), the
    impersonation filter, the access reviews and the escalation write hook."""

    def __init__(self, store, registry, mode: str = "RBAC", node_authorizer: Any = None):
        self.store = store
        self.registry = registry
        self.mode = mode
        self.index = RBACIndex()
        self.rbac = RBACAuthorizer(self.index)
        self.node_authorizer = node_authorizer  # the Node authorizer's slot: (Node, RBAC)
        self._watch_task: asyncio.Task | None = None
        self._watch = None
        self.synced = asyncio.Event()
        if mode == "AlwaysAllow":
            self.chain: Any = AuthorizerChain([AlwaysAllow()])
        else:
            self.chain = AuthorizerChain([PrivilegedGroups(), *([node_authorizer] if node_authorizer else []), self.rbac])

    def set_node_authorizer(self, node_authorizer: Any) -> None:
        """Puts the Node authorizer in front of RBAC (upstream's Node,RBAC order)."""
        self.node_authorizer = node_authorizer
        if self.mode != "AlwaysAllow":
            self.chain = AuthorizerChain([PrivilegedGroups(), node_authorizer, self.rbac])

    # -- lifecycle

    async def start(self) -> None:
        """Reconcile the bootstrap policy, fill the index and keep it current."""
        from pyk8s.apiserver import bootstrappolicy

        await bootstrappolicy.reconcile(self.registry)
        await self._load()
        self._watch_task = asyncio.create_task(self._follow(), name="rbac-index")
        self.registry.write_hooks = (*self.registry.write_hooks, self.check_rbac_write)

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.close()
        if self._watch_task is not None:
            self._watch_task.cancel()
            try:
                await self._watch_task
            except (asyncio.CancelledError, Exception):
                pass

    async def _load(self) -> int:
        start_after = ""
        revision = 0
        fresh = RBACIndex()
        while True:
            result = await self.store.list(RBAC_PREFIX, revision=revision, start_after=start_after, limit=1000)
            revision = result.revision
            for kv in result.items:
                fresh.apply(kv.key, kv.value)
            if not result.more or not result.items:
                break
            start_after = result.items[-1].key
        self.index.__dict__.update({k: v for k, v in fresh.__dict__.items() if k != "changed"})
        self.index.revision = revision
        self.synced.set()
        return revision

    async def _follow(self) -> None:
        from pyk8s.storage.interface import Compacted
        revision = self.index.revision
        while True:
            try:
                self._watch = self.store.watch(RBAC_PREFIX, revision)
                async for event in self._watch:
                    self.index.apply(event.kv.key, event.kv.value if event.type == "PUT" else None)
                    self.index.revision = event.kv.mod_revision
                    revision = event.kv.mod_revision
            except Compacted:
                revision = await self._load()
                continue
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep authorizing from a fresh list
                log.exception("RBAC watch failed; relisting")
                await asyncio.sleep(0.5)
                revision = await self._load()
                continue
            # The store ended a slow watcher: resume from the last revision seen.

    # -- requests

    def authorize(self, attributes: Attributes) -> tuple[str, str]:
        return self.chain.authorize(attributes)

    def check_request(self, user: User, method: str, path: str, query, headers) -> User:
        """Impersonation, then authorization of the request; returns the user it runs as.
        Raises Forbidden (upstream's 403 Status) or BadRequest."""
        if any(name.startswith("Impersonate-") for name in headers.keys()):
            user = self.impersonate(user, headers)
        attributes = rbac.request_attributes(user, method, path, query)
        decision, reason = self.chain.authorize(attributes)
        if decision != ALLOW:
            if user.name.startswith("system:") and not user.name.startswith(rbac.SERVICE_ACCOUNT_PREFIX):
                log.warning("denied %s: %s", user.name, rbac.forbidden_message(attributes, reason))
            raise forbidden(attributes, reason)
        return user

    def impersonate(self, user: User, headers) -> User:
        """Upstream's impersonation filter: each requested identity needs `impersonate` on
        users, groups, serviceaccounts, userextras/<key> or uids."""
        name = headers.get(IMPERSONATE_USER)
        groups = list(headers.getall(IMPERSONATE_GROUP, [])) if hasattr(headers, "getall") else \
            ([headers[IMPERSONATE_GROUP]] if IMPERSONATE_GROUP in headers else [])
        uid = headers.get(IMPERSONATE_UID) or ""
        extra: dict[str, list[str]] = {}
        for header, value in headers.items():
            if header.lower().startswith(IMPERSONATE_EXTRA_PREFIX.lower()):
                from urllib.parse import unquote
                key = unquote(header[len(IMPERSONATE_EXTRA_PREFIX):]).lower()
                extra.setdefault(key, []).append(value)
        if not name:
            if groups or extra or uid:
                raise errors.InternalError("requested [" + ", ".join(
                    [f"{{Group  {g}}}" for g in groups]) + "] without impersonating a user")
            return user
        checks: list[Attributes] = []
        sa_namespace = ""
        if name.startswith(rbac.SERVICE_ACCOUNT_PREFIX) and name.count(":") == 3:
            sa_namespace, sa_name = name[len(rbac.SERVICE_ACCOUNT_PREFIX):].split(":", 1)
            checks.append(Attributes(user, "impersonate", True, "", "", "serviceaccounts", "", sa_namespace, sa_name))
        else:
            checks.append(Attributes(user, "impersonate", True, "", "", "users", "", "", name))
        for group in groups:
            checks.append(Attributes(user, "impersonate", True, "", "", "groups", "", "", group))
        for key, values in extra.items():
            for value in values:
                checks.append(Attributes(user, "impersonate", True, "authentication.k8s.io", "", "userextras", key, "", value))
        if uid:
            checks.append(Attributes(user, "impersonate", True, "authentication.k8s.io", "", "uids", "", "", uid))
        for check in checks:
            decision, reason = self.chain.authorize(check)
            if decision != ALLOW:
                raise forbidden(check, reason)
        if sa_namespace:
            groups = [rbac.SERVICE_ACCOUNTS_GROUP, f"{rbac.SERVICE_ACCOUNTS_GROUP}:{sa_namespace}", *groups]
        if name != rbac.ANONYMOUS:
            if rbac.AUTHENTICATED not in groups and rbac.UNAUTHENTICATED not in groups:
                groups.append(rbac.AUTHENTICATED)
        elif rbac.UNAUTHENTICATED not in groups:
            groups.append(rbac.UNAUTHENTICATED)
        return User(name, tuple(groups), {k: tuple(v) for k, v in extra.items()}, uid)

    # -- escalation checks (a registry write hook)

    async def check_rbac_write(self, resource, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if resource.group != rbac.RBAC_GROUP:
            return
        current = CURRENT_USER.get()
        if current is None or self.mode == "AlwaysAllow":
            return
        user = current if isinstance(current, User) else request_user(current.name, current.groups)
        if rbac.SYSTEM_MASTERS in user.groups:  # upstream's EscalationAllowed
            return
        meta = obj.get("metadata") or {}
        name = meta.get("name", "")
        namespace = meta.get("namespace", "") if resource.namespaced else ""
        qualified = f"{resource.plural}.{resource.group}"
        if resource.kind in ("Role", "ClusterRole"):
            if old is not None and old.get("rules") == obj.get("rules") and \
                    old.get("aggregationRule") == obj.get("aggregationRule"):
                return
            escalate = Attributes(user, "escalate", True, rbac.RBAC_GROUP, "v1", resource.plural, "", namespace, name)
            if self.chain.authorize(escalate)[0] == ALLOW:
                return
            requested = rbac.FULL_AUTHORITY if obj.get("aggregationRule") else list(obj.get("rules") or [])
            missing = rbac.uncovered_rules(self._owner_rules(user, namespace), requested)
            if missing:
                raise errors.Forbidden(f'{qualified} "{name}" is forbidden: {rbac.escalation_message(user, missing)}',
                                       details={"name": name, "group": resource.group, "kind": resource.plural})
            return
        if resource.kind in ("RoleBinding", "ClusterRoleBinding"):
            ref = obj.get("roleRef") or {}
            if old is not None and old.get("roleRef") == ref:
                return
            ref_kind, ref_name = ref.get("kind", ""), ref.get("name", "")
            bind = Attributes(user, "bind", True, rbac.RBAC_GROUP, "v1",
                              "clusterroles" if ref_kind == "ClusterRole" else "roles", "", namespace, ref_name)
            if self.chain.authorize(bind)[0] == ALLOW:
                return
            rules = self.index._role_rules(ref_kind, ref_name, namespace)
            if rules is None:
                missing_name = ("clusterroles" if ref_kind == "ClusterRole" else "roles") + f'.{rbac.RBAC_GROUP} "{ref_name}" not found'
                raise errors.Forbidden(f'{qualified} "{name}" is forbidden: {missing_name}',
                                       details={"name": name, "group": resource.group, "kind": resource.plural})
            missing = rbac.uncovered_rules(self._owner_rules(user, namespace), rules)
            if missing:
                raise errors.Forbidden(f'{qualified} "{name}" is forbidden: {rbac.escalation_message(user, missing)}',
                                       details={"name": name, "group": resource.group, "kind": resource.plural})

    def _owner_rules(self, user: User, namespace: str) -> list[dict]:
        resource_rules, non_resource_rules, _ = self.chain.rules_for(user, namespace)
        return resource_rules + non_resource_rules

    # -- reviews

    def review_handler(self, group: str, plural: str) -> Callable | None:
        return {
            ("authorization.k8s.io", "subjectaccessreviews"): self._subject_access_review,
            ("authorization.k8s.io", "localsubjectaccessreviews"): self._subject_access_review,
            ("authorization.k8s.io", "selfsubjectaccessreviews"): self._self_subject_access_review,
            ("authorization.k8s.io", "selfsubjectrulesreviews"): self._self_subject_rules_review,
            ("authentication.k8s.io", "selfsubjectreviews"): self._self_subject_review,
        }.get((group, plural))

    def _explain(self, attributes: Attributes) -> tuple[str, str]:
        decision, reason = self.chain.authorize(attributes)
        if decision == ALLOW and not reason and self.mode != "AlwaysAllow" \
                and rbac.SYSTEM_MASTERS not in attributes.user.groups:
            return self.rbac.explain(attributes)
        return decision, reason

    def _access_status(self, spec: dict[str, Any], user: User, namespace: str | None) -> dict[str, Any]:
        resource_attributes = spec.get("resourceAttributes")
        non_resource_attributes = spec.get("nonResourceAttributes")
        if resource_attributes:
            ra = resource_attributes
            attributes = Attributes(user, ra.get("verb", ""), True, ra.get("group", ""), ra.get("version", ""),
                                    ra.get("resource", ""), ra.get("subresource", ""),
                                    ra.get("namespace", "") if namespace is None else namespace, ra.get("name", ""))
        else:
            nra = non_resource_attributes or {}
            attributes = Attributes(user, nra.get("verb", ""), False, path=nra.get("path", ""))
        decision, reason = self._explain(attributes)
        status: dict[str, Any] = {"allowed": decision == ALLOW}
        if decision == DENY:
            status["denied"] = True
        if reason:
            status["reason"] = reason
        return status

    @staticmethod
    def _review_body(kind: str, group: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise errors.BadRequest("the body of the request was in an unknown format - accepted media types include: "
                                    "application/json, application/yaml, application/vnd.kubernetes.protobuf")
        metadata = dict(body.get("metadata") or {})
        metadata.setdefault("creationTimestamp", None)
        return {"kind": kind, "apiVersion": f"{group}/v1", "metadata": metadata, "spec": dict(body.get("spec") or {})}

    def _require_attributes(self, kind: str, spec: dict[str, Any]) -> None:
        has_resource = bool(spec.get("resourceAttributes"))
        has_non_resource = bool(spec.get("nonResourceAttributes"))
        if has_resource == has_non_resource:
            detail = ("exactly one of nonResourceAttributes or resourceAttributes must be specified" if has_resource
                      else "exactly one of nonResourceAttributes or resourceAttributes must be specified")
            raise errors.Invalid(kind, "", [{"reason": "FieldValueRequired", "message": f"Required value: {detail}",
                                             "field": "spec.resourceAttributes"}], group="authorization.k8s.io")

    async def _subject_access_review(self, user: User, namespace: str | None, body: Any) -> dict[str, Any]:
        local = namespace is not None
        kind = "LocalSubjectAccessReview" if local else "SubjectAccessReview"
        review = self._review_body(kind, "authorization.k8s.io", body)
        spec = review["spec"]
        self._require_attributes(kind, spec)
        if not spec.get("user") and not spec.get("groups"):
            raise errors.Invalid(kind, "", [{"reason": "FieldValueRequired",
                                             "message": "Required value: at least one of user or group must be specified",
                                             "field": "spec.user"}], group="authorization.k8s.io")
        if local:
            ra = spec.get("resourceAttributes") or {}
            if ra and ra.get("namespace", "") != namespace:
                raise errors.BadRequest(f"spec.resourceAttributes.namespace must match namespace: {namespace}")
            review["metadata"]["namespace"] = namespace
        subject = User(spec.get("user") or "", tuple(spec.get("groups") or ()),
                       {k: tuple(v) for k, v in (spec.get("extra") or {}).items()}, spec.get("uid") or "")
        review["status"] = self._access_status(spec, subject, namespace)
        return review

    async def _self_subject_access_review(self, user: User, namespace: str | None, body: Any) -> dict[str, Any]:
        review = self._review_body("SelfSubjectAccessReview", "authorization.k8s.io", body)
        self._require_attributes("SelfSubjectAccessReview", review["spec"])
        review["status"] = self._access_status(review["spec"], user, None)
        return review

    async def _self_subject_rules_review(self, user: User, namespace: str | None, body: Any) -> dict[str, Any]:
        review = self._review_body("SelfSubjectRulesReview", "authorization.k8s.io", body)
        resource_rules, non_resource_rules, incomplete = self.chain.rules_for(user, review["spec"].get("namespace") or "")
        review["status"] = {"resourceRules": resource_rules, "nonResourceRules": non_resource_rules,
                            "incomplete": incomplete}
        return review

    async def _self_subject_review(self, user: User, namespace: str | None, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            body = {}
        metadata = dict(body.get("metadata") or {})
        metadata.setdefault("creationTimestamp", None)
        info: dict[str, Any] = {"username": user.name}
        if user.uid:
            info["uid"] = user.uid
        if user.groups:
            info["groups"] = list(user.groups)
        if user.extra:
            info["extra"] = {k: list(v) for k, v in user.extra.items()}
        return {"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1", "metadata": metadata,
                "status": {"userInfo": info}}
