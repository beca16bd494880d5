"""CertificateSigningRequest controllers (upstream's csrapproving and csrsigning in
kube-controller-manager).

- `CSRApprovingController` approves kubelet client CSRs (signer
  kubernetes.io/kube-apiserver-client-kubelet) that are valid node client requests when a
  SubjectAccessReview says the requestor may `create` certificatesigningrequests/
  selfnodeclient (a node renewing its own certificate: CN is the requesting user) or
  .../nodeclient (any node client request); the bootstrap policy grants the first to
  system:nodes and the second to the node token's group, as kubeadm's bindings do.
  Anything else stays Pending for `kubectl certificate approve|deny`.
- `CSRSigningController` signs approved CSRs for kube-apiserver-client-kubelet and
  kube-apiserver-client with the cluster CA: subject and SANs from the request, client auth
  usage, valid for the shorter of one year and spec.expirationSeconds, backdated five
  minutes; a request its signer cannot accept gets a Failed condition instead.
"""

from __future__ import annotations

import base64
import datetime
import logging
import time
from typing import Any, Awaitable, Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from pyk8s.api import certificates as csrs
from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.controllers.base import Controller

log = logging.getLogger("pyk8s.controllers.certificates")

CSRS = lookup("certificates.k8s.io", "v1", "certificatesigningrequests")
SUBJECT_ACCESS_REVIEWS = lookup("authorization.k8s.io", "v1", "subjectaccessreviews")
SIGNING_DURATION = datetime.timedelta(days=365)  # --cluster-signing-duration's default
BACKDATE = datetime.timedelta(minutes=5)


def _now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def recognized_permissions(csr: dict[str, Any]) -> list[str]:
    """The approval permissions (subresources of certificatesigningrequests) a CSR is a
    candidate for, in upstream's recognizer order: "selfnodeclient" when a node renews its
    own client certificate (CN equals the requesting user), then "nodeclient" for any valid
    node client request; none for anything else."""
    spec = csr.get("spec") or {}
    if spec.get("signerName") != csrs.KUBELET_CLIENT_SIGNER:
        return []
    try:
        request = csrs.parse_request(csr)
    except csrs.CSRError:
        return []
    if csrs.kubelet_client_problem(csr, request):
        return []
    common_name, _ = csrs.subject_parts(request)
    return ["selfnodeclient", "nodeclient"] if spec.get("username") == common_name else ["nodeclient"]


def access_review(csr: dict[str, Any], permission: str) -> dict[str, Any]:
    """The SubjectAccessReview upstream's approver sends: may the CSR's requestor `create`
    certificatesigningrequests/<permission> in group certificates.k8s.io?"""
    spec = csr.get("spec") or {}
    review_spec: dict[str, Any] = {
        "user": spec.get("username") or "",
        "groups": list(spec.get("groups") or []),
        "resourceAttributes": {"group": CSRS.group, "version": "*", "resource": CSRS.plural, "verb": "create",
                               "subresource": permission}}
    if spec.get("uid"):
        review_spec["uid"] = spec["uid"]
    if spec.get("extra"):
        review_spec["extra"] = {key: list(values) for key, values in spec["extra"].items()}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": review_spec}


_MESSAGES = {"selfnodeclient": "Auto approving self kubelet client certificate after SubjectAccessReview.",
             "nodeclient": "Auto approving kubelet client certificate after SubjectAccessReview."}


class CSRApprovingController(Controller):
    """Approves what the requestor is authorized for: one SubjectAccessReview per
    recognized permission, through the API (so RBAC bindings decide, as upstream: kubeadm's
    bind nodeclient to the node token's group and selfnodeclient to system:nodes)."""

    name = "csrapproving"

    def __init__(self, client, allowed: Callable[[dict[str, Any], str], Awaitable[bool]] | None = None):
        super().__init__(client)
        self.allowed = allowed or self.subject_access_review
        self.csrs = self.informer(CSRS)
        self.csrs.add_handlers(**self.enqueue_handlers())

    async def subject_access_review(self, csr: dict[str, Any], permission: str) -> bool:
        answer = await self.client.create(SUBJECT_ACCESS_REVIEWS, access_review(csr, permission))
        return (answer.get("status") or {}).get("allowed") is True

    async def reconcile(self, key: str) -> None:
        csr = self.csrs.get(key)
        if csr is None or not csrs.is_pending(csr) or (csr.get("status") or {}).get("certificate"):
            return
        tried = []
        for permission in recognized_permissions(csr):
            tried.append(permission)
            if not await self.allowed(csr, permission):
                continue
            approved = dict(csr, status=dict(csr.get("status") or {}))
            approved["status"]["conditions"] = csrs.conditions(csr) + [{
                "type": csrs.APPROVED, "status": "True", "reason": "AutoApproved", "message": _MESSAGES[permission],
                "lastUpdateTime": _now_rfc3339(), "lastTransitionTime": _now_rfc3339()}]
            await self.client.update(CSRS, approved, subresource="approval")
            log.info("approved CSR %s (%s) for %s", key, permission, (csr.get("spec") or {}).get("username"))
            return
        if tried:  # upstream's IgnorableError: left Pending for a person to approve or deny
            log.info("recognized CSR %s as %s but subject access review was not approved", key, tried)


def sign(csr: dict[str, Any], request: x509.CertificateSigningRequest, ca_cert: x509.Certificate, ca_key,
         now: datetime.datetime | None = None) -> bytes:
    """The PEM certificate for an approved request."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    duration = SIGNING_DURATION
    seconds = (csr.get("spec") or {}).get("expirationSeconds")
    if isinstance(seconds, int) and seconds >= csrs.MIN_EXPIRATION_SECONDS:
        duration = min(duration, datetime.timedelta(seconds=seconds))
    usages = set((csr.get("spec") or {}).get("usages") or ())
    builder = (
        x509.CertificateBuilder()
        .subject_name(request.subject)
        .issuer_name(ca_cert.subject)
        .public_key(request.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + duration, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature="digital signature" in usages, content_commitment=False,
                                     key_encipherment="key encipherment" in usages, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False)
    )
    try:
        sans = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    except x509.ExtensionNotFound:
        pass
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def signer_problem(csr: dict[str, Any], request: x509.CertificateSigningRequest) -> str:
    """Why the signer refuses an approved request ("" if it signs it)."""
    signer = (csr.get("spec") or {}).get("signerName")
    if signer == csrs.KUBELET_CLIENT_SIGNER:
        return csrs.kubelet_client_problem(csr, request)
    usages = set((csr.get("spec") or {}).get("usages") or ())
    if not usages <= csrs.CLIENT_USAGES or "client auth" not in usages:
        return f"invalid usage for client certificate: {', '.join(sorted(usages - csrs.CLIENT_USAGES)) or 'client auth is missing'}"
    return ""


class CSRSigningController(Controller):
    name = "csrsigning"
    signers = (csrs.KUBELET_CLIENT_SIGNER, csrs.CLIENT_SIGNER)

    def __init__(self, client, ca_cert_pem: bytes, ca_key_pem: bytes):
        super().__init__(client)
        self.ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
        self.ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
        self.csrs = self.informer(CSRS)
        self.csrs.add_handlers(**self.enqueue_handlers())

    async def reconcile(self, key: str) -> None:
        csr = self.csrs.get(key)
        if csr is None or (csr.get("spec") or {}).get("signerName") not in self.signers:
            return
        if not csrs.is_approved(csr) or csrs.has_condition(csr, csrs.FAILED) or (csr.get("status") or {}).get("certificate"):
            return
        status = dict(csr.get("status") or {})
        try:
            request = csrs.parse_request(csr)
            problem = signer_problem(csr, request)
        except csrs.CSRError as error:
            problem = str(error)
        if problem:
            status["conditions"] = csrs.conditions(csr) + [{
                "type": csrs.FAILED, "status": "True", "reason": "SignerValidationFailure", "message": problem,
                "lastUpdateTime": _now_rfc3339(), "lastTransitionTime": _now_rfc3339()}]
            log.info("CSR %s failed: %s", key, problem)
        else:
            status["certificate"] = base64.b64encode(sign(csr, request, self.ca_cert, self.ca_key)).decode("ascii")
        try:
            await self.client.update(CSRS, dict(csr, status=status), subresource="status")
        except errors.NotFound:
            return
        if not problem:
            log.info("signed CSR %s for %s", key, (csr.get("spec") or {}).get("username"))
