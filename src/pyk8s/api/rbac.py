"""RBAC as pure functions: what a request asks (upstream's RequestInfo), whether a rule
allows it, which bindings apply to a user, ClusterRole aggregation, escalation checks
(does one set of rules cover another), and the texts upstream answers with.

No I/O: the authorizer (apiserver/authz.py) feeds these from an in-memory index of the
stored Roles, ClusterRoles and bindings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from pyk8s.api.requestinfo import parse_request_info

RBAC_GROUP = "rbac.authorization.k8s.io"
AUTOUPDATE_ANNOTATION = "rbac.authorization.kubernetes.io/autoupdate"

ALL = "*"
SYSTEM_MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts"

@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False, compare=False)
    uid: str = ""


@dataclass(frozen=True)
class Attributes:
    """One authorization question (upstream's authorizer.Attributes)."""

    user: User
    verb: str
    resource_request: bool = True
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""


def request_attributes(user: User, method: str, path: str, query: Mapping[str, str]) -> Attributes:
    """The attributes of an HTTP request, as upstream's RequestInfoFactory parses them
    (api/requestinfo.py), a list's name narrowed by an exact metadata.name field selector."""
    info = parse_request_info(method, path, query, name_from_field_selector=True)
    if not info.resource_request:
        return Attributes(user, info.verb, resource_request=False, path=path)
    return Attributes(user, info.verb, True, info.api_group, info.api_version, info.resource, info.subresource,
                      info.namespace, info.name, path)


# ------------------------------------------------------------------ rule matching

def _has(values: Iterable[str], wanted: str) -> bool:
    for value in values:
        if value == ALL or value == wanted:
            return True
    return False


def resource_matches(rule_resources: Iterable[str], resource: str, subresource: str) -> bool:
    """`*`, the exact `resource` or `resource/subresource`, or `*/subresource`."""
    combined = f"{resource}/{subresource}" if subresource else resource
    for candidate in rule_resources:
        if candidate == ALL or candidate == combined:
            return True
        if subresource and candidate == "*/" + subresource:
            return True
    return False


def non_resource_url_matches(rule_urls: Iterable[str], path: str) -> bool:
    for url in rule_urls:
        if url == ALL or url == path:
            return True
        if url.endswith("*") and path.startswith(url[:-1]):
            return True
    return False


def rule_allows(attributes: Attributes, rule: Mapping[str, Any]) -> bool:
    if not _has(rule.get("verbs") or (), attributes.verb):
        return False
    if attributes.resource_request:
        if not _has(rule.get("apiGroups") or (), attributes.api_group):
            return False
        if not resource_matches(rule.get("resources") or (), attributes.resource, attributes.subresource):
            return False
        names = rule.get("resourceNames") or ()
        return not names or attributes.name in names
    return non_resource_url_matches(rule.get("nonResourceURLs") or (), attributes.path)


def service_account_user(namespace: str, name: str) -> str:
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


def subject_applies(subject: Mapping[str, Any], user: User, binding_namespace: str) -> bool:
    """Upstream's appliesToUser: a User by name, a Group by membership, a ServiceAccount by
    its user name (namespace defaulting to the binding's)."""
    kind = subject.get("kind")
    name = subject.get("name") or ""
    if kind == "User":
        return user.name == name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return bool(namespace) and user.name == service_account_user(namespace, name)
    return False


def subject_keys(subject: Mapping[str, Any], binding_namespace: str) -> tuple[str, str] | None:
    """The index key of a subject: ("u", user name) for users and service accounts, ("g",
    group) for groups."""
    kind = subject.get("kind")
    name = subject.get("name") or ""
    if kind == "User":
        return ("u", name)
    if kind == "Group":
        return ("g", name)
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        if namespace:
            return ("u", service_account_user(namespace, name))
    return None


def user_keys(user: User) -> list[tuple[str, str]]:
    return [("u", user.name), *(("g", group) for group in user.groups)]


# ------------------------------------------------------------------ aggregation

def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    from pyk8s.api.selectors import label_selector_from_spec
    return label_selector_from_spec(dict(selector)).matches(dict(labels))


def aggregated_rules(aggregate: Mapping[str, Any], cluster_roles: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rules of an aggregated ClusterRole: the rules of every other ClusterRole whose
    labels match one of its clusterRoleSelectors, in selector order then name order, each
    rule once (upstream's clusterrole-aggregation controller)."""
    name = (aggregate.get("metadata") or {}).get("name")
    selectors = ((aggregate.get("aggregationRule") or {}).get("clusterRoleSelectors")) or []
    ordered = sorted(cluster_roles, key=lambda role: (role.get("metadata") or {}).get("name", ""))
    rules: list[dict[str, Any]] = []
    for selector in selectors:
        for role in ordered:
            meta = role.get("metadata") or {}
            if meta.get("name") == name:
                continue
            if not selector_matches(selector or {}, meta.get("labels") or {}):
                continue
            for rule in role.get("rules") or []:
                if rule not in rules:
                    rules.append(rule)
    return rules


# ------------------------------------------------------------------ escalation

def breakdown(rule: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A rule as single-verb, single-group, single-resource (single-name) rules (upstream's
    BreakdownRule)."""
    atoms: list[dict[str, Any]] = []
    for group in rule.get("apiGroups") or ():
        for resource in rule.get("resources") or ():
            for verb in rule.get("verbs") or ():
                names = rule.get("resourceNames") or ()
                if names:
                    atoms.extend({"verbs": [verb], "apiGroups": [group], "resources": [resource], "resourceNames": [n]}
                                 for n in names)
                else:
                    atoms.append({"verbs": [verb], "apiGroups": [group], "resources": [resource]})
    for url in rule.get("nonResourceURLs") or ():
        for verb in rule.get("verbs") or ():
            atoms.append({"verbs": [verb], "nonResourceURLs": [url]})
    return atoms


def _has_all(values: Iterable[str], wanted: Iterable[str]) -> bool:
    present = set(values)
    return all(item in present for item in wanted)


def _resources_cover(owned: list[str], wanted: list[str]) -> bool:
    if ALL in owned or _has_all(owned, wanted):
        return True
    for path in wanted:
        if path in owned:
            continue
        if "/" not in path:
            return False
        if "*/" + path.split("/", 1)[1] not in owned:
            return False
    return True


def _url_covers(owner: str, path: str) -> bool:
    return owner == path or (owner.endswith("*") and path.startswith(owner.rstrip("*")))


def rule_covers(owner: Mapping[str, Any], sub: Mapping[str, Any]) -> bool:
    verbs = list(owner.get("verbs") or ())
    groups = list(owner.get("apiGroups") or ())
    if not (ALL in verbs or _has_all(verbs, sub.get("verbs") or ())):
        return False
    if not (ALL in groups or _has_all(groups, sub.get("apiGroups") or ())):
        return False
    if not _resources_cover(list(owner.get("resources") or ()), list(sub.get("resources") or ())):
        return False
    owner_urls = list(owner.get("nonResourceURLs") or ())
    if not all(any(_url_covers(o, p) for o in owner_urls) for p in sub.get("nonResourceURLs") or ()):
        return False
    owner_names = owner.get("resourceNames") or ()
    sub_names = sub.get("resourceNames") or ()
    if not sub_names:
        return not owner_names
    return not owner_names or _has_all(owner_names, sub_names)


def uncovered_rules(owner_rules: list[Mapping[str, Any]], requested: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The atoms of `requested` that no rule of `owner_rules` covers (empty: covered)."""
    missing = []
    for rule in requested:
        for atom in breakdown(rule):
            if not any(rule_covers(owner, atom) for owner in owner_rules):
                missing.append(atom)
    return missing


def compact_rules(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rules on one group and one resource (at most one name) merged across verbs
    (upstream's CompactRules)."""
    merged: dict[tuple, dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for rule in rules:
        groups, resources = rule.get("apiGroups") or [], rule.get("resources") or []
        names = rule.get("resourceNames") or []
        if len(groups) == 1 and len(resources) == 1 and len(names) <= 1 and not rule.get("nonResourceURLs"):
            key = (groups[0], resources[0], tuple(names))
            if key in merged:
                merged[key]["verbs"] = merged[key]["verbs"] + list(rule.get("verbs") or [])
                continue
            merged[key] = {**rule, "verbs": list(rule.get("verbs") or [])}
            out.append(merged[key])
        else:
            out.append(dict(rule))
    return out


def go_quoted_list(values: Iterable[str]) -> str:
    """Go's %q of a []string: ["a" "b"]."""
    return "[" + " ".join(go_quote(v) for v in values) + "]"


def go_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def compact_string(rule: Mapping[str, Any]) -> str:
    """Upstream's PolicyRule.CompactString."""
    parts = []
    for key, label in (("apiGroups", "APIGroups"), ("resources", "Resources"), ("nonResourceURLs", "NonResourceURLs"),
                       ("resourceNames", "ResourceNames"), ("verbs", "Verbs")):
        if rule.get(key):
            parts.append(f"{label}:{go_quoted_list(rule[key])}")
    return "{" + ", ".join(parts) + "}"


def escalation_message(user: User, missing: list[dict[str, Any]]) -> str:
    descriptions = sorted({compact_string(rule) for rule in compact_rules(missing)})
    return (f"user {go_quote(user.name)} (groups={go_quoted_list(user.groups)}) is attempting to grant RBAC "
            f"permissions not currently held:\n" + "\n".join(descriptions))


FULL_AUTHORITY = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, {"verbs": ["*"], "nonResourceURLs": ["*"]}]


# ------------------------------------------------------------------ texts

def forbidden_message(attributes: Attributes, reason: str = "") -> str:
    """Upstream's forbidden texts (apiserver's handlers.forbiddenMessage)."""
    user = go_quote(attributes.user.name)
    if not attributes.resource_request:
        text = f"User {user} cannot {attributes.verb} path {go_quote(attributes.path)}"
    else:
        resource = attributes.resource + (f"/{attributes.subresource}" if attributes.subresource else "")
        text = f"User {user} cannot {attributes.verb} resource {go_quote(resource)} in API group {go_quote(attributes.api_group)}"
        if attributes.namespace:
            text += f" in the namespace {go_quote(attributes.namespace)}"
        else:
            text += " at the cluster scope"
    if reason:
        text += ": " + reason
    return text


def forbidden_status_parts(attributes: Attributes, reason: str = "") -> tuple[str, dict[str, Any]]:
    """The message and details of the 403 Status (upstream's responsewriters.Forbidden ->
    NewForbidden(groupResource, name, err))."""
    text = forbidden_message(attributes, reason)
    if not attributes.resource_request:
        return f"forbidden: {text}", {}
    # the group and resource only: upstream's NewForbidden(GroupResource{group, resource}, ...)
    qualified = attributes.resource + (f".{attributes.api_group}" if attributes.api_group else "")
    if attributes.name:
        message = f'{qualified} "{attributes.name}" is forbidden: {text}'
    else:
        message = f"{qualified} is forbidden: {text}"
    details: dict[str, Any] = {"name": attributes.name, "group": attributes.api_group, "kind": attributes.resource}
    return message, details
