"""The HTTPS front of the API server: authentication, routing, and the REST verbs.

Every request is authenticated (`authn`: a client certificate signed by the cluster CA, a
bootstrap token, or anonymous discovery of cluster-info only), then routed by path: discovery and health endpoints, or a resource path
`/api/v1/...` / `/apis/<group>/<version>/...` handled through the Registry. Errors of any
kind become a Status body in `_status_response`, the single place that does so.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web

from pyk8s.api import errors
from pyk8s.api.patch import json_merge_patch, json_patch
from pyk8s.api.resources import Resource, group_versions, lookup
from pyk8s.api.selectors import parse_field_selector, parse_label_selector, validate_field_selector
from pyk8s.api import tables
from pyk8s.apiserver import authz, discovery, negotiation, nodeproxy, openapi, streaming
from pyk8s.api import fieldvalidation, managedfields
from pyk8s.apiserver.bootstrap import bootstrap
from pyk8s.apiserver.registry import DeleteOptions, ListOptions, Registry, StoredObject, decode_without_managed_fields
from pyk8s.apiserver.watch import RawObject, WatchOptions, watch_events

log = logging.getLogger("pyk8s.apiserver")

_MAX_BODY = 16 * 1024 * 1024  # request bodies larger than this get 413

KUBERNETES_VERSION = {"major": "1", "minor": "36", "emulationMajor": "1", "emulationMinor": "36",
                      "minCompatibilityMajor": "1", "minCompatibilityMinor": "35",
                      "gitVersion": "v1.36.0+pyk8s", "gitCommit": "0000000000000000000000000000000000000000",
                      "gitTreeState": "clean", "buildDate": "2026-11-27T00:00:00Z", "goVersion": "python",
                      "compiler": "cpython", "platform": "linux/amd64"}

_LIST_KINDS_SUFFIX = "List"
_SCALE = Resource("autoscaling", "v1", "scale", "Scale", True)


@dataclass
class Target:
    """What a resource path names."""

    resource: Resource
    namespace: str | None
    name: str | None
    subresource: str


class APIServer:
    def __init__(self, store, pki, config):
        self.store = store
        self.pki = pki
        self.config = config
        self.registry = Registry(store, service_cidr=config.service_cidr)
        self._runner: web.AppRunner | None = None
        self._ready = self._serving = False
        self._kubelet_client: nodeproxy.KubeletClient | None = None
        from pyk8s.apiserver import audit
        self.auditor = audit.auditor_for(config)  # None unless --audit-log (audit.py)
        # RBAC behind system:masters, the Node authorizer's slot between them (authz.py).
        self.authorization = authz.Authorization(store, self.registry, getattr(config, "authorization_mode", "RBAC"))
        from pyk8s.apiserver.authn import RequestAuthenticator
        from pyk8s.apiserver.serviceaccounts import ServiceAccountTokenAuthenticator
        from pyk8s.cluster.serviceaccountkeys import load_service_account_keys
        # ServiceAccount tokens (apiserver/serviceaccounts.py): the issuer is also the one
        # audience this server accepts, as upstream's default --api-audiences.
        self.service_account_keys = load_service_account_keys(config.data_dir / "server" / "tls")
        self.service_account_issuer = "https://kubernetes.default.svc.cluster.local"
        self.api_audiences = [self.service_account_issuer]
        self.registry.service_account_admission = not config.disable_controllers
        # Paths served before authentication by handlers that check their own credential
        # (cluster/serverjoin.py: the server-token-authenticated bootstrap endpoint).
        self.extra_routes: dict[str, Any] = {}
        from pyk8s.apiserver.x509auth import CertificateAuthenticator
        self.authenticator = RequestAuthenticator(self.registry, ServiceAccountTokenAuthenticator(
            self.registry, self.service_account_keys, issuer=self.service_account_issuer, audiences=self.api_audiences),
            certificates=CertificateAuthenticator(self.pki.ca_cert))

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        from pyk8s.apiserver.x509auth import request_client_certificates
        from pyk8s.cluster.pki import server_ssl_context

        await bootstrap(self.registry, self.config)
        from pyk8s.apiserver import nodeauthorizer
        await nodeauthorizer.install(self)  # the pod -> node graph and the Node authorizer
        await self.authorization.start()
        loop = asyncio.get_running_loop()

        def make_request(message, payload, protocol, writer, task) -> web.BaseRequest:
            return web.BaseRequest(message, payload, protocol, writer, task, loop, client_max_size=_MAX_BODY)

        # aiohttp's low-level server: every path goes to _handle, which routes by itself, so
        # the Application's router and middleware chain would only add work to each request.
        server = web.Server(self._handle, request_factory=make_request, access_log=None)
        self._runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.bind_address or None, self.config.https_port,
                           ssl_context=request_client_certificates(server_ssl_context(self.pki)), backlog=1024, reuse_address=True)
        await site.start()
        self._serving = True

    def mark_ready(self) -> None:
        """/readyz answers 200 from now on: called once the whole server has started (its
        post-start work done, like upstream's post-start hooks), so a client that waited for
        /readyz finds everything start-up writes."""
        self._ready = True

    async def stop(self) -> None:
        self._ready = self._serving = False
        if getattr(self, "node_graph_populator", None) is not None:
            await self.node_graph_populator.stop()
        await self.authorization.stop()
        if self._kubelet_client is not None:
            await self._kubelet_client.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.auditor is not None:
            self.auditor.close()

    # ------------------------------------------------------------ every request

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        route = self.extra_routes.get(request.path)
        if route is not None:  # e.g. the server bootstrap endpoint: authenticates by itself
            return await route(request)
        if self.auditor is None:
            return await self._serve(request)
        from pyk8s.apiserver.audit import serve_audited
        return await serve_audited(self.auditor, self._authenticated, self._serve, request)

    async def _serve(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            user = await self._authenticated(request)
            if user is None:
                raise errors.Unauthorized("Unauthorized")
            self._authorize(request, user)
            return await self._dispatch(request)
        except errors.ApiError as exc:
            return _status_response(exc)
        except web.HTTPException:
            raise
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:  # a bug must not take the server down: answer 500 like upstream
            log.exception("internal error serving %s %s", request.method, request.path)
            return _status_response(errors.InternalError.of(str(exc)))

    async def _authenticated(self, request: web.BaseRequest):
        """A client certificate, a bootstrap token, or anonymous discovery (authn.py); None
        when the request does not authenticate."""
        transport = request.transport
        if transport is None:
            return None
        # Any client certificate passed the handshake; the authenticator verifies it (x509auth.py).
        ssl_object = transport.get_extra_info("ssl_object")
        certificate = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        return await self.authenticator.authenticate(request.method, request.path, certificate,
                                                     request.headers.get("Authorization"))

    def _authorize(self, request: web.BaseRequest, user) -> None:
        """Impersonation, then the authorizer chain (authz.py): Forbidden unless allowed. The
        user the request runs as is kept for the write path (requestcontext.current_user)."""
        acting = self.authorization.check_request(
            authz.request_user(user.name, user.groups, dict(getattr(user, "extra", ()) or ()), getattr(user, "uid", "")),
            request.method, request.path, request.query, request.headers)
        authz.CURRENT_USER.set(acting)

    # ------------------------------------------------------------ routing

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
        if not parts:
            return _raw_json({"paths": sorted(self._root_paths())})
        head = parts[0]
        if head == "api":
            if len(parts) == 1:
                return self._discovery_response(request, core=True)
            if len(parts) == 2:
                return self._resource_list_response("", parts[1])
            return await self._resource_request(request, "", parts[1], parts[2:])
        if head == "apis":
            if len(parts) == 1:
                return self._discovery_response(request, core=False)
            if len(parts) == 2:
                group = discovery.api_group(parts[1])
                if group is None:
                    raise errors.NotFound("the server could not find the requested resource")
                return _json(group)
            if len(parts) == 3:
                return self._resource_list_response(parts[1], parts[2])
            return await self._resource_request(request, parts[1], parts[2], parts[3:])
        if head == "version" and len(parts) == 1:
            return _raw_json(KUBERNETES_VERSION)
        if head in ("healthz", "livez", "readyz"):
            if not (self._ready if head == "readyz" else self._serving):
                return web.Response(status=500, text=f"[-]{head} failed: not ready\n")
            if "verbose" in request.query:
                return web.Response(text=f"[+]ping ok\n[+]etcd ok\n{head} check passed\n")
            return web.Response(text="ok")
        if head in (".well-known", "openid") and request.method == "GET":
            from pyk8s.apiserver import serviceaccounts
            from pyk8s.api import serviceaccounttoken
            if path == serviceaccounts.DISCOVERY_PATH:
                return _json(serviceaccounts.discovery_document(self.service_account_issuer))
            if path == serviceaccounts.JWKS_PATH:
                body = orjson.dumps(serviceaccounttoken.jwks(self.service_account_keys.public_keys),
                                    option=orjson.OPT_APPEND_NEWLINE)
                return web.Response(body=body, headers={"Content-Type": serviceaccounts.JWKS_CONTENT_TYPE,
                                                        "Cache-Control": "public, max-age=3600"})
        if head == "openapi":
            answer = openapi.openapi_response(path, request.query, request.headers.get("Accept"))
            if answer is None:
                raise errors.NotFound("the server could not find the requested resource")
            return web.Response(status=answer.status, body=answer.body,
                                headers={"Content-Type": answer.content_type, **answer.headers})
        raise errors.NotFound("the server could not find the requested resource")

    def _root_paths(self) -> list[str]:
        paths = ["/.well-known/openid-configuration", "/api", "/api/v1", "/apis", "/healthz", "/livez",
                 "/openapi/v2", "/openapi/v3", "/openid/v1/jwks", "/readyz", "/version"]
        for group, version in group_versions():
            if group:
                paths += [f"/apis/{group}", f"/apis/{group}/{version}"]
        return paths

    def _discovery_response(self, request: web.BaseRequest, *, core: bool) -> web.Response:
        for media_type, params in negotiation.parse_accept(request.headers.get("Accept")):
            if params.get("as") == "APIGroupDiscoveryList" and params.get("g") == "apidiscovery.k8s.io" \
                    and params.get("v") == "v2":
                body = orjson.dumps(discovery.aggregated(core), option=orjson.OPT_APPEND_NEWLINE)
                return web.Response(body=body, headers={"Content-Type": discovery.AGGREGATED_CONTENT_TYPE})
        if core:
            address = f"{self.config.resolved_advertise_address()}:{self.config.https_port}"
            return _json(discovery.api_versions(address))
        return _json(discovery.api_group_list())

    def _resource_list_response(self, group: str, version: str) -> web.Response:
        document = discovery.api_resource_list(group, version)
        if document is None:
            raise errors.NotFound("the server could not find the requested resource")
        return _json(document)

    def _target(self, group: str, version: str, rest: list[str]) -> tuple[Target, bool]:
        """Parses `[watch/][namespaces/NS/]PLURAL[/NAME[/SUB]]`; returns (target, legacy_watch)."""
        legacy_watch = False
        if rest and rest[0] == "watch":
            legacy_watch = True
            rest = rest[1:]
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            # /namespaces/NS/PLURAL... unless it is the namespace's own subresource
            # (/namespaces/NAME/status|finalize).
            candidate = lookup(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                namespace = rest[1]
                rest = rest[2:]
        if not rest:
            raise errors.NotFound("the server could not find the requested resource")
        resource = lookup(group, version, rest[0])
        if resource is None:
            raise errors.NotFound("the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else ""
        if len(rest) > 3 and subresource != "proxy":
            raise errors.NotFound("the server could not find the requested resource")
        if subresource and subresource not in resource.subresources:
            raise errors.NotFound("the server could not find the requested resource")
        if namespace is None and resource.namespaced and name is not None:
            raise errors.NotFound("the server could not find the requested resource")
        return Target(resource, namespace, name, subresource), legacy_watch

    async def _resource_request(self, request: web.BaseRequest, group: str, version: str,
                                rest: list[str]) -> web.StreamResponse:
        target, legacy_watch = self._target(group, version, rest)
        method = request.method
        query = request.query
        review = self.authorization.review_handler(target.resource.group, target.resource.plural)
        if review is not None:
            if method != "POST" or target.name is not None:
                raise errors.MethodNotAllowed("the server does not allow this method on the requested resource")
            answer = await review(authz.CURRENT_USER.get(), target.namespace, await self._read_body(request))
            return _respond(answer, negotiation.choose_form(request.headers.get("Accept"), allow_as=()), status=201)
        if target.name is None:
            if method == "GET":
                if legacy_watch or _truthy(query.get("watch")):
                    return await self._watch(request, target)
                return await self._list(request, target)
            if method == "POST":
                return await self._create(request, target)
            if method == "DELETE":
                return await self._delete_collection(request, target)
            raise errors.MethodNotAllowed(f"the server does not allow this method on the requested resource")
        if target.subresource == "scale":
            return await self._scale(request, target)
        if target.subresource == "binding" and method == "POST":
            return await self._bind(request, target)
        if target.subresource == "token" and target.resource.plural == "serviceaccounts":
            return await self._token_request(request, target)
        if target.subresource == "log" and method == "GET":
            return await self._pod_log(request, target)
        if target.subresource in ("exec", "attach", "portforward") and target.resource.plural == "pods":
            return await streaming.pod_stream(self, request, target)
        if target.subresource not in ("", "status", "finalize", "approval"):
            raise errors.NotFound("the server could not find the requested resource")
        if method == "GET":
            if legacy_watch:
                return await self._watch(request, target)
            return await self._get(request, target)
        if method == "PUT":
            return await self._update(request, target)
        if method == "PATCH":
            return await self._patch(request, target)
        if method == "DELETE":
            return await self._delete(request, target)
        raise errors.MethodNotAllowed("the server does not allow this method on the requested resource")

    # ------------------------------------------------------------ verbs

    async def _get(self, request: web.BaseRequest, target: Target) -> web.Response:
        form = negotiation.choose_form(request.headers.get("Accept"))
        if not form.as_kind and form.media_type != negotiation.YAML:
            raw = await self.registry.get_raw(target.resource, target.namespace, target.name,
                                              request.query.get("resourceVersion", ""))
            # The one copy of the object here, to end it with the encoder's newline.
            return web.Response(body=raw + b"\n", content_type=negotiation.JSON)
        obj = await self.registry.get(target.resource, target.namespace, target.name,
                                      request.query.get("resourceVersion", ""))
        if form.as_kind == "Table":
            return _respond(self._table(target.resource, [obj], request, obj["metadata"].get("resourceVersion", "")), form)
        if form.as_kind == "PartialObjectMetadata":
            return _respond(_partial(obj, form), form)
        return _respond(obj, form)

    async def _list(self, request: web.BaseRequest, target: Target) -> web.Response:
        form = negotiation.choose_form(request.headers.get("Accept"))
        options = self._list_options(request, target.resource)
        raw = form.media_type == negotiation.JSON and form.as_kind in ("", "Table")
        items, revision, token, remaining = await self.registry.list(target.resource, target.namespace, options, raw=raw)
        metadata: dict[str, Any] = {"resourceVersion": str(revision)}
        if token:
            metadata["continue"] = token
            if remaining is not None:
                metadata["remainingItemCount"] = remaining
        if form.as_kind == "Table" and raw:
            # Row by row from the stored bytes: each object is decoded, turned into its row
            # and dropped, so a large list never holds every decoded object at once.
            head = orjson.dumps({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
                                 "columnDefinitions": tables.column_definitions(target.resource)})
            now = time.time()
            include = request.query.get("includeObject", "Metadata")
            rows = [table_row_json(target.resource, item, include, now) for item in items]
            return await _send_spliced(request, head[:-1] + b',"rows":[', rows, b"]}")
        if form.as_kind == "Table":
            table = self._table(target.resource, items, request, str(revision))
            table["metadata"] = metadata
            return _respond(table, form)
        if form.as_kind in ("PartialObjectMetadataList", "PartialObjectMetadata"):
            body = {"kind": "PartialObjectMetadataList", "apiVersion": f"meta.k8s.io/{form.version}",
                    "metadata": metadata, "items": [_partial(o, form) for o in items]}
            return _respond(body, form)
        if raw:
            # Items are already JSON: splice them into the list without re-encoding.
            head = orjson.dumps({"kind": target.resource.kind + _LIST_KINDS_SUFFIX,
                                 "apiVersion": target.resource.api_version, "metadata": metadata})
            return await _send_spliced(request, head[:-1] + b',"items":[', items, b"]}")
        body = {"kind": target.resource.kind + _LIST_KINDS_SUFFIX, "apiVersion": target.resource.api_version,
                "metadata": metadata, "items": items}
        return _respond(body, form)

    def _list_options(self, request: web.BaseRequest, resource: Resource) -> ListOptions:
        query = request.query
        options = ListOptions()
        if query.get("labelSelector"):
            options.label_selector = parse_label_selector(query["labelSelector"])
        if query.get("fieldSelector"):
            selector = parse_field_selector(query["fieldSelector"])
            allowed = ["metadata.name", "metadata.namespace", *resource.field_selectors]
            validate_field_selector(selector, allowed, resource.kind)
            options.field_selector = selector
        if query.get("limit"):
            try:
                options.limit = max(int(query["limit"]), 0)
            except ValueError:
                raise errors.BadRequest(f"invalid limit {query['limit']!r}")
        options.continue_token = query.get("continue", "")
        options.resource_version = query.get("resourceVersion", "")
        options.resource_version_match = query.get("resourceVersionMatch", "")
        if options.resource_version_match and not options.resource_version:
            raise errors.BadRequest("resourceVersionMatch is forbidden unless resourceVersion is provided")
        if options.continue_token and options.resource_version and options.resource_version != "0":
            raise errors.BadRequest("specifying resource version is not allowed when using continue")
        return options

    def _table(self, resource: Resource, items: list[dict[str, Any]], request: web.BaseRequest,
               revision: str) -> dict[str, Any]:
        now = time.time()
        include = request.query.get("includeObject", "Metadata")
        rows = [table_row(resource, obj, include, now) for obj in items]
        return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": revision},
                "columnDefinitions": tables.column_definitions(resource), "rows": rows}

    async def _read_body(self, request: web.BaseRequest) -> Any:
        body = await request.read()
        return negotiation.decode_body(body, request.headers.get("Content-Type"))

    def _check_kind(self, obj: Any, resource: Resource, accept_scale: bool = False) -> dict[str, Any]:
        if not isinstance(obj, dict):
            raise errors.BadRequest("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf")
        kind = obj.get("kind")
        api_version = obj.get("apiVersion")
        if kind and kind != resource.kind:
            raise errors.BadRequest(f"the API version in the data ({api_version}) does not match the expected API version ({resource.api_version})"
                                    if api_version and api_version != resource.api_version else
                                    f"the kind in the data ({kind}) does not match the expected kind ({resource.kind})")
        if api_version and api_version != resource.api_version:
            raise errors.BadRequest(f"the API version in the data ({api_version}) does not match the expected API version ({resource.api_version})")
        return obj

    async def _create(self, request: web.BaseRequest, target: Target) -> web.Response:
        form = negotiation.choose_form(request.headers.get("Accept"), allow_as=())
        obj, warnings = await self._read_checked_body(request, target.resource, "create")
        created = await self.registry.create(target.resource, target.namespace, obj, dry_run=_dry_run(request),
                                             field_manager=_field_manager(request))
        return _with_warnings(_respond(created, form, status=201), warnings)

    async def _read_checked_body(self, request: web.BaseRequest, resource: Resource, verb: str) -> tuple[dict[str, Any], list[str]]:
        """Reads a create/update body and applies ?fieldValidation= to it (unknown and
        duplicate fields), before any defaulting."""
        directive = request.query.get("fieldValidation")
        invalid_directive = fieldvalidation.check_directive(directive, verb)
        if invalid_directive is not None:
            raise invalid_directive
        raw = await request.read()
        content_type = request.headers.get("Content-Type")
        obj = self._check_kind(negotiation.decode_body(raw, content_type), resource)
        warnings, error = fieldvalidation.field_errors_for(resource, obj, raw, content_type, directive, verb=verb,
                                                           decoded=obj)
        if error is not None:
            raise error
        return obj, warnings

    async def _update(self, request: web.BaseRequest, target: Target) -> web.Response:
        form = negotiation.choose_form(request.headers.get("Accept"), allow_as=())
        obj, warnings = await self._read_checked_body(request, target.resource, "update")
        if target.subresource == "finalize":
            updated = await self.registry.modify(target.resource, target.namespace, target.name,
                                                 lambda current: _finalize_namespace(current, obj))
            return _respond(updated, form)
        updated = await self.registry.update(target.resource, target.namespace, target.name, obj,
                                             subresource=target.subresource, dry_run=_dry_run(request),
                                             field_manager=_field_manager(request))
        return _with_warnings(_respond(updated, form), warnings)

    async def _patch(self, request: web.BaseRequest, target: Target) -> web.Response:
        form = negotiation.choose_form(request.headers.get("Accept"), allow_as=())
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
        directive = request.query.get("fieldValidation")
        invalid_directive = fieldvalidation.check_directive(directive, "patch")
        if invalid_directive is not None:
            raise invalid_directive
        is_apply = content_type == negotiation.APPLY_PATCH
        managedfields.validate_patch_options(apply=is_apply, field_manager=request.query.get("fieldManager"),
                                             force=request.query.get("force"))
        raw = await request.read()
        patch = negotiation.decode_body(raw, content_type)
        if is_apply:
            return await self._apply(request, target, form, raw, patch, directive)
        apply_patch = _patcher(content_type, patch, target.resource)
        warnings: list[str] = []

        def mutate(current: dict[str, Any]) -> dict[str, Any]:
            patched = apply_patch(current)
            found, error = fieldvalidation.field_errors_for(target.resource, patched, raw, content_type, directive,
                                                             verb="patch")
            if error is not None:
                raise error
            warnings[:] = found
            return patched

        updated = await self.registry.modify(target.resource, target.namespace, target.name, mutate,
                                             subresource=target.subresource, dry_run=_dry_run(request),
                                             field_manager=_field_manager(request))
        return _with_warnings(_respond(updated, form), warnings)

    async def _apply(self, request: web.BaseRequest, target: Target, form, raw: bytes, patch: Any,
                     directive: str | None) -> web.Response:
        """Server-side apply (`application/apply-patch+yaml`): merges into the live object, or
        creates it when missing (upstream's applyPatcher)."""
        resource = target.resource
        manager = request.query["fieldManager"]
        force = _truthy(request.query.get("force"))
        dry_run = _dry_run(request)

        def applied(current: dict[str, Any] | None) -> dict[str, Any]:
            result = managedfields.apply(resource, current, patch, manager, force, subresource=target.subresource)
            _, error = fieldvalidation.field_errors_for(resource, result, raw, negotiation.APPLY_PATCH, directive,
                                                        verb="patch")
            if error is not None:
                raise error
            return result

        for _ in range(5):
            try:
                updated = await self.registry.modify(resource, target.namespace, target.name, applied,
                                                     subresource=target.subresource, dry_run=dry_run)
                return _respond(updated, form)
            except errors.NotFound:
                if target.subresource:
                    raise
            created_obj = applied(None)
            meta = created_obj.setdefault("metadata", {})
            if meta.get("name") and meta["name"] != target.name:
                raise errors.BadRequest(f"the name of the object ({meta['name']}) does not match the name on the URL ({target.name})")
            meta["name"] = target.name
            try:
                created = await self.registry.create(resource, target.namespace, created_obj, dry_run=dry_run)
                return _respond(created, form, status=201)
            except errors.AlreadyExists:
                continue  # created meanwhile: apply to it
        raise errors.Conflict.of(resource.group, resource.plural, target.name, errors.OBJECT_MODIFIED)

    async def _delete(self, request: web.BaseRequest, target: Target) -> web.Response:
        form = negotiation.choose_form(request.headers.get("Accept"), allow_as=())
        options = await self._delete_options(request)
        obj, removed = await self.registry.delete(target.resource, target.namespace, target.name, options)
        # Upstream's stores with ReturnDeletedObject answer with the object, others with a Status.
        if removed and target.resource.kind not in ("Pod", "Namespace", "Service", "Node", "ServiceAccount", "StorageClass"):
            details = {"name": target.name, "group": target.resource.group, "kind": target.resource.plural,
                       "uid": obj["metadata"].get("uid")}
            return _respond(errors.status_body("Success", details=details), form)
        # Upstream answers 200 also when the object is only marked for deletion (202 only for
        # an explicit orphanDependents=false).
        status = 202 if (not removed and options.orphan_dependents is False) else 200
        return _respond(obj, form, status=status)

    async def _delete_options(self, request: web.BaseRequest) -> DeleteOptions:
        options = DeleteOptions()
        query = request.query
        body: dict[str, Any] = {}
        if request.can_read_body:
            raw = await request.read()
            if raw.strip():
                decoded = negotiation.decode_body(raw, request.headers.get("Content-Type"))
                if isinstance(decoded, dict):
                    body = decoded
        grace = body.get("gracePeriodSeconds", query.get("gracePeriodSeconds"))
        if grace is not None:
            try:
                options.grace_period_seconds = int(grace)
            except ValueError:
                raise errors.BadRequest(f"invalid gracePeriodSeconds {grace!r}")
        options.propagation_policy = body.get("propagationPolicy") or query.get("propagationPolicy")
        if options.propagation_policy not in (None, "Orphan", "Background", "Foreground"):
            raise errors.Invalid("DeleteOptions", "", [errors.not_supported(
                "propagationPolicy", options.propagation_policy, ["Foreground", "Background", "Orphan", "nil"])])
        orphan = body.get("orphanDependents", query.get("orphanDependents"))
        if orphan is not None:
            options.orphan_dependents = orphan if isinstance(orphan, bool) else _truthy(orphan)
        preconditions = body.get("preconditions") or {}
        options.precondition_uid = preconditions.get("uid")
        options.precondition_resource_version = preconditions.get("resourceVersion")
        dry_run = body.get("dryRun") or request.query.getall("dryRun", [])
        options.dry_run = "All" in (dry_run or [])
        return options

    async def _delete_collection(self, request: web.BaseRequest, target: Target) -> web.Response:
        form = negotiation.choose_form(request.headers.get("Accept"), allow_as=())
        list_options = self._list_options(request, target.resource)
        options = await self._delete_options(request)
        items, revision, _, _ = await self.registry.list(target.resource, target.namespace, list_options)
        deleted = []
        for obj in items:
            meta = obj["metadata"]
            try:
                result, _ = await self.registry.delete(target.resource, meta.get("namespace"), meta["name"], options)
                deleted.append(result)
            except errors.NotFound:
                continue
        return _respond({"kind": target.resource.kind + _LIST_KINDS_SUFFIX, "apiVersion": target.resource.api_version,
                         "metadata": {"resourceVersion": str(revision)}, "items": deleted}, form)

    async def _watch(self, request: web.BaseRequest, target: Target) -> web.StreamResponse:
        form = negotiation.choose_form(request.headers.get("Accept"))
        query = request.query
        list_options = self._list_options(request, target.resource)
        if target.name is not None:
            name_selector = parse_field_selector(f"metadata.name={target.name}")
            list_options.field_selector = name_selector
        timeout = None
        if query.get("timeoutSeconds"):
            try:
                timeout = float(query["timeoutSeconds"])
            except ValueError:
                raise errors.BadRequest("invalid timeoutSeconds")
        options = WatchOptions(resource_version=query.get("resourceVersion", ""), timeout_seconds=timeout,
                               allow_bookmarks=_truthy(query.get("allowWatchBookmarks")),
                               send_initial_events=_truthy(query.get("sendInitialEvents")))
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                           "Cache-Control": "no-cache, private"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        if self.auditor is not None:
            from pyk8s.apiserver.audit import response_started
            response_started(request)
        first = True
        events = watch_events(self.registry, target.resource, target.namespace, list_options, options)
        try:
            async for batch in events:
                lines = []
                for event_type, obj in batch:
                    if isinstance(obj, RawObject):
                        if not form.as_kind and form.media_type == negotiation.JSON:
                            lines.append(b"".join((b'{"type":"', event_type.encode(), b'","object":', obj.json(), b"}\n")))
                            continue
                        obj = obj.decode()
                    if form.as_kind == "Table" and event_type not in ("ERROR", "BOOKMARK"):
                        table = self._table(target.resource, [obj], request, obj["metadata"].get("resourceVersion", ""))
                        if not first:
                            table["columnDefinitions"] = []
                        first = False
                        obj = table
                    lines.append(orjson.dumps({"type": event_type, "object": obj}) + b"\n")
                # One write per batch: a burst of events costs one TLS record, not one each.
                await response.write(b"".join(lines))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            await events.aclose()
        return response

    async def _scale(self, request: web.BaseRequest, target: Target) -> web.Response:
        form = negotiation.choose_form(request.headers.get("Accept"), allow_as=())
        resource = target.resource
        if request.method == "GET":
            obj = await self.registry.get(resource, target.namespace, target.name)
            return _respond(_scale_of(obj), form)
        if request.method not in ("PUT", "PATCH"):
            raise errors.MethodNotAllowed("the server does not allow this method on the requested resource")
        body = await self._read_body(request)
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()

        def mutate(current: dict[str, Any]) -> dict[str, Any]:
            scale = _scale_of(current)
            if request.method == "PUT":
                wanted = body
                wanted_rv = ((body or {}).get("metadata") or {}).get("resourceVersion")
                if wanted_rv and wanted_rv != scale["metadata"]["resourceVersion"]:
                    raise errors.Conflict.of(resource.group, resource.plural, target.name, errors.OBJECT_MODIFIED)
            else:
                wanted = _patcher(content_type, body, _SCALE)(scale)
            replicas = ((wanted or {}).get("spec") or {}).get("replicas", 0)
            if not isinstance(replicas, int) or replicas < 0:
                raise errors.Invalid("Scale", target.name, [errors.invalid("spec.replicas", replicas, "must be greater than or equal to 0")], group="autoscaling")
            current.setdefault("spec", {})["replicas"] = replicas
            current["metadata"].pop("resourceVersion", None)
            return current

        # The stored object does not hold its resourceVersion: give mutate() a decoded view.
        async def modify() -> dict[str, Any]:
            key = resource.storage_key(target.namespace, target.name)
            for _ in range(5):
                kv = await self.store.get(key)
                if kv is None:
                    raise errors.NotFound.of(resource.group, resource.plural, target.name)
                current = orjson.loads(kv.value)
                current["metadata"]["resourceVersion"] = str(kv.mod_revision)
                new = mutate(current)
                try:
                    return await self.registry.update(resource, target.namespace, target.name,
                                                      dict(new, metadata=dict(new["metadata"], resourceVersion=str(kv.mod_revision))),
                                                      dry_run=_dry_run(request), subresource="scale",
                                                      field_manager=_field_manager(request))
                except errors.Conflict:
                    continue
            raise errors.Conflict.of(resource.group, resource.plural, target.name, errors.OBJECT_MODIFIED)

        updated = await modify()
        return _respond(_scale_of(updated), form)

    async def _pod_log(self, request: web.BaseRequest, target: Target) -> web.StreamResponse:
        """pods/log: proxied to the kubelet of the pod's node (upstream's LogREST)."""
        pod = await self.registry.get(target.resource, target.namespace, target.name)
        containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []] + \
            [c["name"] for c in (pod.get("spec") or {}).get("initContainers") or []]
        container = request.query.get("container") or nodeproxy.default_container(pod)
        if container not in containers:
            raise errors.BadRequest(f"container {container} is not valid for pod {target.name}")
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            raise errors.BadRequest(f'container "{container}" in pod "{target.name}" is waiting to start: ContainerCreating')
        node = await self.registry.get(lookup("", "v1", "nodes"), None, node_name)
        host, port = nodeproxy.node_address(node)
        params = {k: v for k, v in request.query.items() if k != "container"}
        path = f"/containerLogs/{target.namespace}/{target.name}/{container}"
        try:
            async with self._kubelet().get(host, port, path, params) as reply:
                if reply.status >= 400:
                    text = (await reply.text()).strip()
                    raise errors.BadRequest(text or f"kubelet answered {reply.status}")
                response = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
                response.enable_chunked_encoding()
                await response.prepare(request)
                async for chunk in reply.content.iter_any():
                    await response.write(chunk)
                return response
        except OSError as exc:
            raise errors.InternalError(f"Get \"https://{host}:{port}{path}\": {exc}")

    def _kubelet(self) -> nodeproxy.KubeletClient:
        if self._kubelet_client is None:
            from pyk8s.cluster.pki import issue_client_cert
            # The kubelet serves with a self-signed certificate, as upstream's default does.
            cert, key = issue_client_cert(self.pki, "kube-apiserver-kubelet-client", ["system:masters"],
                                          self.config.data_dir / "server" / "tls")
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            context.load_cert_chain(str(cert), str(key))
            self._kubelet_client = nodeproxy.KubeletClient(context)
        return self._kubelet_client

    async def _token_request(self, request: web.BaseRequest, target: Target) -> web.Response:
        """serviceaccounts/token: TokenRequest (apiserver/serviceaccounts.py)."""
        if request.method != "POST":
            raise errors.MethodNotAllowed("the server does not allow this method on the requested resource")
        from pyk8s.apiserver.serviceaccounts import create_token
        form = negotiation.choose_form(request.headers.get("Accept"), allow_as=())
        answer = await create_token(self.registry, self.service_account_keys, self.service_account_issuer,
                                    self.api_audiences, target.namespace, target.name, await self._read_body(request))
        return _respond(answer, form, status=201)

    async def _bind(self, request: web.BaseRequest, target: Target) -> web.Response:
        """pods/binding: the scheduler's way of setting spec.nodeName once."""
        body = await self._read_body(request)
        node = ((body or {}).get("target") or {}).get("name")
        if not node:
            raise errors.Invalid("Binding", target.name, [errors.required("target.name")])

        def bind(pod: dict[str, Any]) -> dict[str, Any]:
            spec = pod.setdefault("spec", {})
            if pod["metadata"].get("deletionTimestamp"):
                raise errors.Conflict.of("", "pods", target.name, "pod is being deleted, cannot be assigned to a host")
            if spec.get("nodeName"):
                raise errors.Conflict.of("", "pods", target.name, f"pod {target.name} is already assigned to node \"{spec['nodeName']}\"")
            spec["nodeName"] = node
            status = pod.setdefault("status", {})
            conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
            conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                               "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
            status["conditions"] = conditions
            return pod

        # Binding writes spec and status together, as upstream's binding REST does.
        await self.registry.modify(target.resource, target.namespace, target.name, bind, subresource="binding")
        return _respond(errors.status_body("Success", code=201), negotiation.ResponseForm(), status=201)


# ---------------------------------------------------------------- helpers

def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1")


def _field_manager(request: web.BaseRequest) -> str:
    """The manager recorded for a non-apply write: ?fieldManager= or the User-Agent's prefix."""
    return managedfields.manager_name(request.query.get("fieldManager"), request.headers.get("User-Agent"))


def _dry_run(request: web.BaseRequest) -> bool:
    values = request.query.getall("dryRun", [])
    for value in values:
        if value != "All":
            raise errors.BadRequest(f'Invalid dryRun value: "{value}". Supported values: "All"')
    return bool(values)


def _patcher(content_type: str, patch: Any, resource: Resource):
    if content_type == negotiation.MERGE_PATCH:
        if not isinstance(patch, dict):
            raise errors.BadRequest("json: cannot unmarshal into Go value of type map[string]interface {}")
        return lambda current: json_merge_patch(current, patch)
    if content_type == negotiation.JSON_PATCH:
        if not isinstance(patch, list):
            raise errors.BadRequest("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
        return lambda current: json_patch(current, patch)
    if content_type == negotiation.STRATEGIC_MERGE_PATCH:
        if not isinstance(patch, dict):
            raise errors.BadRequest("json: cannot unmarshal into Go value of type map[string]interface {}")
        from pyk8s.api import strategicpatch
        return lambda current: strategicpatch.apply(resource, current, patch)
    raise errors.UnsupportedMediaType(f"the body of the request was in an unknown format - accepted media types include: "
                                      f"application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")


def _finalize_namespace(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    current.setdefault("spec", {})["finalizers"] = list((wanted.get("spec") or {}).get("finalizers") or [])
    return current


def _scale_of(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    selector = spec.get("selector")
    if isinstance(selector, dict) and ("matchLabels" in selector or "matchExpressions" in selector):
        from pyk8s.api.selectors import label_selector_from_spec
        selector_text = str(label_selector_from_spec(selector))
    elif isinstance(selector, dict):
        selector_text = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    else:
        selector_text = ""
    scale_status: dict[str, Any] = {"replicas": status.get("replicas", 0)}
    if selector_text:
        scale_status["selector"] = selector_text
    scale_meta = {key: meta[key] for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if key in meta}
    return {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": scale_meta,
            "spec": {"replicas": spec.get("replicas", 0)}, "status": scale_status}


def table_row(resource: Resource, obj: dict[str, Any], include_object: str, now: float) -> dict[str, Any]:
    """One Table row from a decoded object; `include_object` is ?includeObject= (None,
    Metadata, Object)."""
    row: dict[str, Any] = {"cells": tables.row_cells(resource, obj, now)}
    if include_object == "Object":
        row["object"] = obj
    elif include_object != "None":
        row["object"] = _partial(obj, negotiation.ResponseForm(as_kind="PartialObjectMetadata", version="v1"))
    return row


def table_row_json(resource: Resource, stored: bytes, include_object: str, now: float) -> bytes:
    """table_row's JSON from an object's stored bytes. With includeObject=Metadata the row's
    metadata is the stored JSON as it is, so managedFields are neither decoded nor encoded;
    it must equal table_row's answer (tests/unit/test_fast_path_equivalence.py)."""
    if include_object == "Metadata":
        split = decode_without_managed_fields(stored)
        if split is not None:
            obj, metadata = split
            return b"".join((b'{"cells":', orjson.dumps(tables.row_cells(resource, obj, now)),
                             b',"object":{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":',
                             metadata, b"}}"))
    return orjson.dumps(table_row(resource, orjson.loads(stored), include_object, now))


def _partial(obj: dict[str, Any], form: negotiation.ResponseForm) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": f"meta.k8s.io/{form.version or 'v1'}",
            "metadata": obj.get("metadata", {})}


# Response framing follows upstream's JSON serializer, a json.Encoder: every object, list,
# Table, Status and discovery document it writes ends with "\n". Watch events are framed by
# their own newlines. Only /version and / go around the serializer upstream (WriteRawJSON:
# two-space indented, no newline).

def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE), status=status,
                        content_type="application/json")


def _raw_json(value: Any) -> web.Response:
    return web.Response(body=orjson.dumps(value, option=orjson.OPT_INDENT_2), content_type="application/json")


def _respond(value: Any, form: negotiation.ResponseForm, status: int = 200) -> web.Response:
    if form.media_type == negotiation.YAML:  # a YAML document ends with its line break already
        return web.Response(body=negotiation.encode(value, negotiation.YAML), status=status,
                            content_type=negotiation.YAML)
    if type(value) is StoredObject:
        return web.Response(body=value.raw + b"\n", status=status, content_type=negotiation.JSON)
    return web.Response(body=orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE), status=status,
                        content_type=negotiation.JSON)


_SPLICE_CHUNK = 1024 * 1024


async def _send_spliced(request: web.BaseRequest, opening: bytes, items: list[bytes], closing: bytes) -> web.StreamResponse:
    """`opening` + the items joined by commas + `closing` + the encoder's newline, sent in
    chunks of about a MiB: the client reads (and decrypts) one chunk while the next is
    encrypted, instead of waiting for a whole list of many megabytes to be joined and
    encrypted first."""
    closing += b"\n"
    response = web.StreamResponse(headers={"Content-Type": negotiation.JSON})
    response.content_length = len(opening) + sum(map(len, items)) + max(len(items) - 1, 0) + len(closing)
    await response.prepare(request)
    chunk: list[bytes] = [opening]
    size = len(opening)
    for index, item in enumerate(items):
        if index:
            chunk.append(b",")
        chunk.append(item)
        size += len(item)
        if size >= _SPLICE_CHUNK:
            await response.write(b"".join(chunk))
            chunk, size = [], 0
    chunk.append(closing)
    await response.write(b"".join(chunk))
    await response.write_eof()
    return response


def _with_warnings(response: web.Response, warnings: list[str]) -> web.Response:
    for text in dict.fromkeys(warnings):  # upstream sends each distinct warning once
        response.headers.add("Warning", fieldvalidation.warning_header(text))
    return response


def _status_response(error: errors.ApiError) -> web.Response:
    return web.Response(body=errors.encode_status(error.status()), status=error.code,
                        content_type="application/json", headers=error.headers)
