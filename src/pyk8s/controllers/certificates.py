"""CertificateSigningRequest controllers (upstream's csrapproving and csrsigning in
kube-controller-manager).

- `CSRApprovingController` approves kubelet client CSRs (signer
  kubernetes.io/kube-apiserver-client-kubelet) that are valid node client requests and
  come from a bootstrap token (group system:bootstrappers: "nodeclient") or from the node
  itself renewing (requestor system:node:<name> asking for CN system:node:<name>:
  "selfnodeclient"), as kubeadm's and k3s's default bindings allow. Anything else stays
  Pending for `kubectl certificate approve|deny`.
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
from typing import Any, Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from pyk8s.api import certificates as csrs
from pyk8s.api import errors
from pyk8s.api.resources import lookup
from pyk8s.controllers.base import Controller

log = logging.getLogger("pyk8s.controllers.certificates")

CSRS = lookup("certificates.k8s.io", "v1", "certificatesigningrequests")
BOOTSTRAPPERS_GROUP = "system:bootstrappers"
SIGNING_DURATION = datetime.timedelta(days=365)  # --cluster-signing-duration's default
BACKDATE = datetime.timedelta(minutes=5)


def _now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def approval_permission(csr: dict[str, Any]) -> str:
    """Which upstream SubjectAccessReview the auto-approver would check ("selfnodeclient",
    "nodeclient") for this CSR, or "" when it is not a node client request."""
    spec = csr.get("spec") or {}
    if spec.get("signerName") != csrs.KUBELET_CLIENT_SIGNER:
        return ""
    try:
        request = csrs.parse_request(csr)
    except csrs.CSRError:
        return ""
    if csrs.kubelet_client_problem(csr, request):
        return ""
    common_name, _ = csrs.subject_parts(request)
    if spec.get("username") == common_name:
        return "selfnodeclient"
    return "nodeclient"


def default_permission_check(csr: dict[str, Any], permission: str) -> bool:
    """kubeadm's bindings: system:certificates.k8s.io:certificatesigningrequests:nodeclient
    for bootstrap tokens, ...:selfnodeclient for system:nodes."""
    groups = set((csr.get("spec") or {}).get("groups") or ())
    if permission == "selfnodeclient":
        return csrs.NODES_GROUP in groups
    if permission == "nodeclient":
        return BOOTSTRAPPERS_GROUP in groups
    return False


class CSRApprovingController(Controller):
    name = "csrapproving"

    def __init__(self, client, allowed: Callable[[dict[str, Any], str], bool] = default_permission_check):
        super().__init__(client)
        self.allowed = allowed
        self.csrs = self.informer(CSRS)
        self.csrs.add_handlers(**self.enqueue_handlers())

    async def reconcile(self, key: str) -> None:
        csr = self.csrs.get(key)
        if csr is None or not csrs.is_pending(csr) or (csr.get("status") or {}).get("certificate"):
            return
        permission = approval_permission(csr)
        if not permission or not self.allowed(csr, permission):
            return
        message = ("Auto approving self kubelet client certificate after SubjectAccessReview."
                   if permission == "selfnodeclient" else
                   "Auto approving kubelet client certificate after SubjectAccessReview.")
        approved = dict(csr, status=dict(csr.get("status") or {}))
        approved["status"]["conditions"] = csrs.conditions(csr) + [{
            "type": csrs.APPROVED, "status": "True", "reason": "AutoApproved", "message": message,
            "lastUpdateTime": _now_rfc3339(), "lastTransitionTime": _now_rfc3339()}]
        await self.client.update(CSRS, approved, subresource="approval")
        log.info("approved CSR %s (%s) for %s", key, permission, (csr.get("spec") or {}).get("username"))


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
