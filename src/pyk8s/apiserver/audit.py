"""Audit logging (`pyk8s server --audit-log PATH [--audit-policy-file FILE]
[--audit-log-maxsize MB] [--audit-log-maxbackup N]`), upstream's audit.k8s.io/v1.

Flow: the server asks `Auditor.begin()` for each request once it knows the user; the policy
(first matching rule, else level None; without a policy file every request is Metadata)
decides the level. A request at level None costs that one lookup. Otherwise the request
gets an `AuditContext` that emits events per stage (RequestReceived; ResponseStarted for
watches; ResponseComplete or Panic) as JSON lines: encoded on the request path (orjson,
microseconds), written by one writer thread fed by a queue, so a slow disk never holds a
request. The file rotates when the next line would pass maxsize (lumberjack's
`<name>-<timestamp>.<ext>` backups, the newest maxbackup kept). Without --audit-log there
is no Auditor at all.

Levels: Metadata = who/what/when/result; Request adds requestObject; RequestResponse adds
responseObject (when the answer is one JSON document). Upstream's annotations
authorization.k8s.io/decision and /reason come from the authorizer through `annotate`.
"""

from __future__ import annotations

import datetime
import logging
import os
import queue
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import orjson
import yaml

from pyk8s.api.rbac import non_resource_url_matches
from pyk8s.api.requestinfo import RequestInfo, parse_request_info

log = logging.getLogger("pyk8s.apiserver.audit")

LEVELS = ("None", "Metadata", "Request", "RequestResponse")
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")


class PolicyError(ValueError):
    pass


# --------------------------------------------------------------------------- what is asked

def request_info(method: str, path: str, query) -> RequestInfo:
    """Upstream's RequestInfoFactory (api/requestinfo.py), for audit: path segments
    percent-decoded, a nameless namespaces request named after its namespace."""
    return parse_request_info(method, path, query, unescape_segments=True, namespace_names_itself=True)


# --------------------------------------------------------------------------- the policy

@dataclass
class PolicyRule:
    level: str
    users: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[dict[str, Any], ...] = ()
    namespaces: tuple[str, ...] | None = None
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: tuple[str, ...] = ()
    omit_managed_fields: bool | None = None

    def matches(self, user_name: str, groups: Iterable[str], info: RequestInfo) -> bool:
        if self.users and user_name not in self.users:
            return False
        if self.user_groups and not set(self.user_groups) & set(groups):
            return False
        if self.verbs and info.verb not in self.verbs:
            return False
        if self.resources or self.namespaces is not None:
            if not info.resource_request:
                return False
            if self.namespaces is not None and info.namespace not in self.namespaces:
                return False
            if self.resources and not any(_group_resource_matches(entry, info) for entry in self.resources):
                return False
        if self.non_resource_urls:
            if info.resource_request:
                return False
            if not non_resource_url_matches(self.non_resource_urls, info.path):
                return False
        return True


def _group_resource_matches(entry: dict[str, Any], info: RequestInfo) -> bool:
    if entry.get("group", "") != info.api_group and entry.get("group") != "*":
        return False
    resources = entry.get("resources") or []
    if resources:
        combined = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
        if not any(r in ("*", combined) or r == f"*/{info.subresource}" and info.subresource
                   or r == f"{info.resource}/*" and info.subresource for r in resources):
            return False
    names = entry.get("resourceNames") or []
    return not names or info.name in names


@dataclass
class Decision:
    level: str
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool = False


@dataclass
class Policy:
    rules: list[PolicyRule] = field(default_factory=list)
    omit_stages: tuple[str, ...] = ()
    omit_managed_fields: bool = False
    default_level: str = "None"  # no rule matched

    def decide(self, user_name: str, groups: Iterable[str], info: RequestInfo) -> Decision:
        groups = tuple(groups)
        for rule in self.rules:
            if rule.matches(user_name, groups, info):
                omit_managed = self.omit_managed_fields if rule.omit_managed_fields is None else rule.omit_managed_fields
                return Decision(rule.level, frozenset(self.omit_stages) | frozenset(rule.omit_stages), omit_managed)
        return Decision(self.default_level, frozenset(self.omit_stages), self.omit_managed_fields)


def log_everything_policy() -> Policy:
    """Without --audit-policy-file every request is logged at Metadata level."""
    return Policy(rules=[PolicyRule("Metadata")])


def _quoted(values: Iterable[str]) -> str:
    return ", ".join(f'"{value}"' for value in values)


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{what} must be a list of strings")
    return tuple(value)


def _stages(value: Any, what: str) -> tuple[str, ...]:
    stages = _strings(value, what)
    for stage in stages:
        if stage not in STAGES:
            raise PolicyError(f'{what}: Unsupported value: "{stage}": supported values: {_quoted(STAGES)}')
    return stages


def parse_policy(document: dict[str, Any]) -> Policy:
    """An audit.k8s.io/v1 Policy document (upstream's format; v1beta1 is read the same)."""
    if not isinstance(document, dict) or document.get("kind") != "Policy":
        raise PolicyError("the audit policy file must hold a kind: Policy document")
    if document.get("apiVersion") not in ("audit.k8s.io/v1", "audit.k8s.io/v1beta1"):
        raise PolicyError(f'unsupported audit policy apiVersion "{document.get("apiVersion")}"')
    rules = []
    for index, raw in enumerate(document.get("rules") or []):
        where = f"rules[{index}]"
        if not isinstance(raw, dict):
            raise PolicyError(f"{where} must be a mapping")
        level = raw.get("level")
        if level not in LEVELS:
            raise PolicyError(f'{where}.level: Unsupported value: "{level}": supported values: {_quoted(LEVELS)}')
        resources = raw.get("resources")
        if resources is not None and (not isinstance(resources, list) or not all(isinstance(r, dict) for r in resources)):
            raise PolicyError(f"{where}.resources must be a list of group resources")
        non_resource = _strings(raw.get("nonResourceURLs"), f"{where}.nonResourceURLs")
        if non_resource and (resources or raw.get("namespaces")):
            raise PolicyError(f"{where}: rules cannot apply to both regular resources and non-resource URLs")
        omit = raw.get("omitManagedFields")
        rules.append(PolicyRule(
            level=level, users=_strings(raw.get("users"), f"{where}.users"),
            user_groups=_strings(raw.get("userGroups"), f"{where}.userGroups"),
            verbs=_strings(raw.get("verbs"), f"{where}.verbs"),
            resources=tuple(dict(r) for r in resources or ()),
            namespaces=_strings(raw.get("namespaces"), f"{where}.namespaces") if raw.get("namespaces") is not None else None,
            non_resource_urls=non_resource, omit_stages=_stages(raw.get("omitStages"), f"{where}.omitStages"),
            omit_managed_fields=bool(omit) if omit is not None else None))
    return Policy(rules=rules, omit_stages=_stages(document.get("omitStages"), "omitStages"),
                  omit_managed_fields=bool(document.get("omitManagedFields", False)))


def load_policy(path: Path) -> Policy:
    try:
        document = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise PolicyError(f"reading audit policy {path}: {error}")
    return parse_policy(document)


# --------------------------------------------------------------------------- writing

class RotatingWriter:
    """Appends lines to `path`, rotating by size like lumberjack: the file is renamed to
    `<stem>-<UTC time>.<ext>` and at most `max_backups` such backups are kept (0: all)."""

    def __init__(self, path: Path, *, max_bytes: int = 0, max_backups: int = 0):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_backups = max_backups
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = None
        self._size = 0

    def _open(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._file = os.fdopen(fd, "ab", buffering=0)
        self._size = os.fstat(fd).st_size

    def write(self, data: bytes) -> None:
        if self._file is None:
            self._open()
        if self.max_bytes and self._size and self._size + len(data) > self.max_bytes:
            self.rotate()
        self._file.write(data)
        self._size += len(data)

    def backup_name(self, moment: datetime.datetime) -> Path:
        stamp = moment.strftime("%Y-%m-%dT%H-%M-%S.") + f"{moment.microsecond // 1000:03d}"
        return self.path.with_name(f"{self.path.stem}-{stamp}{self.path.suffix}")

    def backups(self) -> list[Path]:
        prefix, suffix = self.path.stem + "-", self.path.suffix
        return sorted(p for p in self.path.parent.iterdir()
                      if p.name.startswith(prefix) and p.name.endswith(suffix) and p != self.path)

    def rotate(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        target = self.backup_name(datetime.datetime.now(datetime.timezone.utc))
        while target.exists():  # two rotations in one millisecond
            target = target.with_name(target.stem + "0" + target.suffix)
        if self.path.exists():
            os.replace(self.path, target)
        if self.max_backups:
            for old in self.backups()[:-self.max_backups]:
                try:
                    old.unlink()
                except OSError:
                    pass
        self._open()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class AuditLog:
    """A queue and the one thread that drains it into the RotatingWriter."""

    _STOP = object()

    def __init__(self, writer: RotatingWriter):
        self.writer = writer
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._drain, name="audit-log", daemon=True)
        self._thread.start()

    def put(self, line: bytes) -> None:
        self.queue.put(line)

    def _drain(self) -> None:
        while True:
            item = self.queue.get()
            if item is self._STOP:
                break
            lines = [item]
            try:  # write what has queued up in one go
                while True:
                    more = self.queue.get_nowait()
                    if more is self._STOP:
                        self._write(lines)
                        return
                    lines.append(more)
            except queue.Empty:
                pass
            self._write(lines)

    def _write(self, lines: list[bytes]) -> None:
        try:
            for line in lines:
                self.writer.write(line)
        except OSError:
            log.exception("writing the audit log failed")

    def close(self) -> None:
        self.queue.put(self._STOP)
        self._thread.join(timeout=10)
        self.writer.close()


# --------------------------------------------------------------------------- events

def timestamp(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}Z"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _without_managed_fields(obj: Any) -> Any:
    if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict) and "managedFields" in obj["metadata"]:
        obj = dict(obj, metadata={k: v for k, v in obj["metadata"].items() if k != "managedFields"})
    if isinstance(obj, dict) and isinstance(obj.get("items"), list):
        obj = dict(obj, items=[_without_managed_fields(item) for item in obj["items"]])
    return obj


class AuditContext:
    """One request's audit events."""

    def __init__(self, auditor: "Auditor", decision: Decision, event: dict[str, Any]):
        self.auditor = auditor
        self.decision = decision
        self.event = event
        self.annotations: dict[str, str] = {}
        self.finished = False

    @property
    def level(self) -> str:
        return self.decision.level

    def annotate(self, key: str, value: str) -> None:
        self.annotations[key] = value

    def set_impersonated_user(self, name: str, groups: Iterable[str]) -> None:
        self.event["impersonatedUser"] = {"username": name, "groups": list(groups)}

    def set_request_object(self, obj: Any) -> None:
        if LEVELS.index(self.level) >= LEVELS.index("Request") and obj is not None:
            self.event["requestObject"] = _without_managed_fields(obj) if self.decision.omit_managed_fields else obj

    def set_response_object(self, obj: Any) -> None:
        if self.level == "RequestResponse" and obj is not None:
            self.event["responseObject"] = _without_managed_fields(obj) if self.decision.omit_managed_fields else obj

    def emit(self, stage: str) -> None:
        if stage in self.decision.omit_stages:
            return
        event = dict(self.event)
        event["stage"] = stage
        event["stageTimestamp"] = timestamp(_now())
        if stage == "RequestReceived":
            event.pop("responseStatus", None)
            event.pop("responseObject", None)
        if self.annotations:
            event["annotations"] = dict(self.annotations)
        self.auditor.log.put(orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE))

    def response_started(self, code: int) -> None:
        self.event["responseStatus"] = {"metadata": {}, "code": code}
        self.emit("ResponseStarted")

    def complete(self, code: int, status: dict[str, Any] | None = None) -> None:
        if self.finished:
            return
        self.finished = True
        response_status: dict[str, Any] = {"metadata": {}, "code": code}
        if status and code >= 400:
            for key in ("status", "message", "reason", "details"):
                if status.get(key):
                    response_status[key] = status[key]
        self.event["responseStatus"] = response_status
        self.emit("ResponseComplete")

    def panic(self, message: str) -> None:
        if self.finished:
            return
        self.finished = True
        self.event["responseStatus"] = {"metadata": {}, "status": "Failure", "message": message, "code": 500}
        self.emit("Panic")


class Auditor:
    def __init__(self, policy: Policy, log_: AuditLog):
        self.policy = policy
        self.log = log_

    @classmethod
    def from_flags(cls, path: Path, policy_file: Path | None = None, max_size_mb: int = 0,
                   max_backups: int = 0) -> "Auditor":
        policy = load_policy(policy_file) if policy_file else log_everything_policy()
        return cls(policy, AuditLog(RotatingWriter(path, max_bytes=max_size_mb * 1024 * 1024, max_backups=max_backups)))

    def begin(self, *, method: str, path: str, query, request_uri: str, user_name: str, groups: Iterable[str],
              uid: str = "", extra: Any = None, source_ips: list[str], user_agent: str,
              received: datetime.datetime | None = None) -> AuditContext | None:
        """The request's AuditContext (its RequestReceived event emitted), or None when the
        policy logs it at level None."""
        info = request_info(method, path, query)
        decision = self.policy.decide(user_name, groups, info)
        if decision.level == "None":
            return None
        user: dict[str, Any] = {"username": user_name}
        if uid:
            user["uid"] = uid
        user["groups"] = list(groups)
        if extra:
            user["extra"] = {key: list(values) for key, values in dict(extra).items()}
        event: dict[str, Any] = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": decision.level,
                                 "auditID": str(uuid.uuid4()), "stage": "", "requestURI": request_uri,
                                 "verb": info.verb, "user": user, "sourceIPs": source_ips}
        if user_agent:
            event["userAgent"] = user_agent
        if info.resource_request:
            ref: dict[str, Any] = {"resource": info.resource}
            if info.namespace:
                ref["namespace"] = info.namespace
            if info.name:
                ref["name"] = info.name
            if info.api_group:
                ref["apiGroup"] = info.api_group
            ref["apiVersion"] = info.api_version
            if info.subresource:
                ref["subresource"] = info.subresource
            event["objectRef"] = ref
        event["requestReceivedTimestamp"] = timestamp(received or _now())
        context = AuditContext(self, decision, event)
        context.emit("RequestReceived")
        return context

    def close(self) -> None:
        self.log.close()


# --------------------------------------------------------------------------- the server's side

AUDIT_KEY = "pyk8s.audit"  # the request's AuditContext, for handlers that add to it
AUTHZ_KEY = "pyk8s.authz"  # (decision, reason) the authorizer may leave on the request


def auditor_for(config) -> Auditor | None:
    """The server's Auditor from its config (audit_log, audit_policy_file,
    audit_log_maxsize, audit_log_maxbackup), or None when auditing is off."""
    path = getattr(config, "audit_log", "") or ""
    if not path:
        return None
    policy_file = getattr(config, "audit_policy_file", "") or None
    return Auditor.from_flags(Path(path), Path(policy_file) if policy_file else None,
                              int(getattr(config, "audit_log_maxsize", 0) or 0),
                              int(getattr(config, "audit_log_maxbackup", 0) or 0))


def response_started(request, code: int = 200) -> None:
    context = request.get(AUDIT_KEY)
    if context is not None:
        context.response_started(code)


def _with_authenticated(user) -> tuple[str, ...]:
    """The user's groups as upstream records them: system:authenticated added for every
    authenticated user but the anonymous one."""
    groups = tuple(getattr(user, "groups", ()) or ())
    if user is not None and getattr(user, "name", "") != "system:anonymous" \
            and "system:authenticated" not in groups and "system:unauthenticated" not in groups:
        groups += ("system:authenticated",)
    return groups


async def serve_audited(auditor: Auditor, authenticate, serve, request):
    """`serve(request)` with audit events around it. `authenticate(request)` gives the user
    (None when the request does not authenticate: logged with no user and its 401)."""
    import asyncio

    from pyk8s.apiserver import negotiation

    received = _now()
    from pyk8s.apiserver.requestcontext import current_user
    try:
        user = await authenticate(request)
    except Exception:  # noqa: BLE001 - serve() answers it properly
        user = None
    if isinstance(user, bool):  # an authenticate() that only says yes or no: the user is kept aside
        user = current_user.get() if user else None
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    source_ips = [peer[0]] if peer else []
    context = auditor.begin(method=request.method, path=request.path, query=request.query,
                            request_uri=request.path_qs, user_name=getattr(user, "name", "") or "",
                            groups=_with_authenticated(user), uid=getattr(user, "uid", "") or "",
                            extra=getattr(user, "extra", None), source_ips=source_ips,
                            user_agent=request.headers.get("User-Agent", ""), received=received)
    if context is None:
        return await serve(request)
    request[AUDIT_KEY] = context
    try:
        response = await serve(request)
    except (asyncio.CancelledError, ConnectionResetError):
        context.complete(499)
        raise
    except BaseException as error:
        context.panic(f"{error.__class__.__name__}: {error}")
        raise
    code = response.status
    body = getattr(response, "body", None) if type(response).__name__ == "Response" else None
    decoded = None
    if isinstance(body, (bytes, bytearray)) and (response.content_type or "").endswith("json"):
        try:
            decoded = orjson.loads(body)
        except orjson.JSONDecodeError:
            decoded = None
    if context.level in ("Request", "RequestResponse") and request.method in ("POST", "PUT", "PATCH"):
        try:
            context.set_request_object(negotiation.decode_body(await request.read(), request.headers.get("Content-Type")))
        except Exception:  # noqa: BLE001 - a body the handler refused: leave it out
            pass
    if code < 400 or code == 403 or user is not None:
        decision = request.get(AUTHZ_KEY)
        if decision is None and user is not None:
            forbidden = code == 403 and isinstance(decoded, dict) and " cannot " in str(decoded.get("message", ""))
            decision = ("forbid", "") if forbidden else ("allow", "")
        if decision is not None:
            context.annotate("authorization.k8s.io/decision", decision[0])
            context.annotate("authorization.k8s.io/reason", decision[1])
    if decoded is not None:
        context.set_response_object(decoded)
    context.complete(code, decoded if isinstance(decoded, dict) and decoded.get("kind") == "Status" else None)
    return response
