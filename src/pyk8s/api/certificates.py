"""CertificateSigningRequests (certificates.k8s.io/v1), the pure part: parsing the PEM
request, validation, conditions, and the recognisers the approver and signers use.

Upstream's facts this follows (pkg/apis/certificates and its validation):
- `spec.request` is a PEM "CERTIFICATE REQUEST" (base64 in JSON), signed by its own key;
- `spec.username/uid/groups/extra` are the requestor, set by the API server, never by the
  client; `status.conditions` holds Approved / Denied (mutually exclusive, never removed)
  and Failed; `status.certificate` is the issued PEM, set once;
- a kubelet client CSR (signer `kubernetes.io/kube-apiserver-client-kubelet`) has subject
  O=system:nodes only, CN=system:node:<name>, no SANs, and usages digital signature +
  client auth (key encipherment allowed).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from pyk8s.api import errors

KUBELET_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"
KUBELET_SERVING_SIGNER = "kubernetes.io/kubelet-serving"
LEGACY_UNKNOWN_SIGNER = "kubernetes.io/legacy-unknown"

NODE_USER_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"

APPROVED, DENIED, FAILED = "Approved", "Denied", "Failed"

KNOWN_USAGES = (
    "signing", "digital signature", "content commitment", "key encipherment", "key agreement",
    "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any",
    "server auth", "client auth", "code signing", "email protection", "s/mime", "ipsec end system",
    "ipsec tunnel", "ipsec user", "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc",
)
CLIENT_USAGES = frozenset({"digital signature", "key encipherment", "client auth"})
# Upstream's kubelet client CSRs: with or without key encipherment.
KUBELET_CLIENT_USAGE_SETS = (frozenset({"digital signature", "client auth"}),
                             frozenset({"key encipherment", "digital signature", "client auth"}))
MIN_EXPIRATION_SECONDS = 600


class CSRError(ValueError):
    pass


def request_pem(csr: dict[str, Any]) -> bytes:
    """The PEM bytes of spec.request (base64 in the JSON form)."""
    value = (csr.get("spec") or {}).get("request")
    if not isinstance(value, str) or not value:
        raise CSRError("PEM block type must be CERTIFICATE REQUEST")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise CSRError("PEM block type must be CERTIFICATE REQUEST")


def parse_request(csr: dict[str, Any]) -> x509.CertificateSigningRequest:
    """The x509 request of a CSR object, its signature checked (upstream's ParseCSR +
    CheckSignature)."""
    pem = request_pem(csr)
    if b"-----BEGIN CERTIFICATE REQUEST-----" not in pem:
        raise CSRError("PEM block type must be CERTIFICATE REQUEST")
    try:
        request = x509.load_pem_x509_csr(pem)
    except ValueError as error:
        raise CSRError(f"x509: malformed certificate request ({error})")
    if not request.is_signature_valid:
        raise CSRError("x509: ECDSA verification failure")
    return request


def subject_parts(request: x509.CertificateSigningRequest) -> tuple[str, list[str]]:
    """(CN, [O...]) of the request's subject."""
    common_names = request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    organizations = request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return (str(common_names[0].value) if common_names else ""), [str(o.value) for o in organizations]


def has_sans(request: x509.CertificateSigningRequest) -> bool:
    try:
        extension = request.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return False
    return len(list(extension.value)) > 0


def kubelet_client_problem(csr: dict[str, Any], request: x509.CertificateSigningRequest) -> str:
    """Why this is not a valid kubelet client CSR ("" when it is): upstream's
    ValidateKubeletClientCSR."""
    common_name, organizations = subject_parts(request)
    if organizations != [NODES_GROUP]:
        return "subject organization is not system:nodes"
    if has_sans(request):
        return "DNS, email, IP and URI subjectAltNames are not allowed"
    if not common_name.startswith(NODE_USER_PREFIX) or len(common_name) == len(NODE_USER_PREFIX):
        return 'subject common name does not begin with "system:node:"'
    usages = frozenset((csr.get("spec") or {}).get("usages") or ())
    if usages not in KUBELET_CLIENT_USAGE_SETS:
        return "usages did not match [client auth digital signature] or [client auth digital signature key encipherment]"
    return ""


def conditions(csr: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in (csr.get("status") or {}).get("conditions") or [] if isinstance(c, dict)]


def has_condition(csr: dict[str, Any], condition_type: str) -> bool:
    return any(c.get("type") == condition_type and c.get("status", "True") == "True" for c in conditions(csr))


def is_approved(csr: dict[str, Any]) -> bool:
    return has_condition(csr, APPROVED) and not has_condition(csr, DENIED)


def is_pending(csr: dict[str, Any]) -> bool:
    return not has_condition(csr, APPROVED) and not has_condition(csr, DENIED)


def certificate_pem(csr: dict[str, Any]) -> bytes:
    value = (csr.get("status") or {}).get("certificate")
    if not value:
        return b""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return b""


def status_text(csr: dict[str, Any]) -> str:
    """kubectl's CONDITION column: Denied/Approved/Pending, then ,Failed and ,Issued."""
    text = "Denied" if has_condition(csr, DENIED) else "Approved" if has_condition(csr, APPROVED) else "Pending"
    if has_condition(csr, FAILED):
        text += ",Failed"
    if (csr.get("status") or {}).get("certificate"):
        text += ",Issued"
    return text


# --- validation (upstream's ValidateCertificateSigningRequest{Create,Update,...}) -------

def _render_request(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def validate_spec(csr: dict[str, Any]) -> list[dict[str, str]]:
    spec = csr.get("spec") if isinstance(csr.get("spec"), dict) else {}
    causes: list[dict[str, str]] = []
    if not spec.get("request"):
        causes.append(errors.required("spec.request"))
    else:
        try:
            parse_request(csr)
        except CSRError as error:
            causes.append(errors.invalid("spec.request", "[]byte{...}", str(error)))
    signer = spec.get("signerName")
    if not signer:
        causes.append(errors.required("spec.signerName"))
    elif not isinstance(signer, str) or signer.count("/") < 1 or signer.startswith("/") or signer.endswith("/"):
        causes.append(errors.invalid("spec.signerName", signer,
                                     "must be a fully qualified domain and path of the form 'example.com/signer-name'"))
    usages = spec.get("usages")
    if not usages:
        causes.append(errors.required("spec.usages"))
    else:
        seen = set()
        for index, usage in enumerate(usages if isinstance(usages, list) else [usages]):
            if usage not in KNOWN_USAGES:
                causes.append(errors.not_supported(f"spec.usages[{index}]", usage, list(KNOWN_USAGES)))
            elif usage in seen:
                causes.append(errors.duplicate(f"spec.usages[{index}]", usage))
            seen.add(usage)
    expiration = spec.get("expirationSeconds")
    if expiration is not None and (not isinstance(expiration, int) or expiration < MIN_EXPIRATION_SECONDS):
        causes.append(errors.invalid("spec.expirationSeconds", expiration,
                                     "may not specify a duration less than 600 seconds (10 minutes)"))
    return causes


def validate_status(csr: dict[str, Any], old: dict[str, Any] | None) -> list[dict[str, str]]:
    causes: list[dict[str, str]] = []
    seen: set[str] = set()
    for index, condition in enumerate(conditions(csr)):
        condition_type = condition.get("type")
        if not condition_type:
            causes.append(errors.required(f"status.conditions[{index}].type"))
            continue
        if condition.get("status", "True") not in ("True", "False", "Unknown"):
            causes.append(errors.not_supported(f"status.conditions[{index}].status", condition.get("status"),
                                               ["False", "True", "Unknown"]))
        if condition_type in seen:
            causes.append(errors.duplicate(f"status.conditions[{index}].type", condition_type))
        seen.add(condition_type)
        if condition_type == APPROVED and DENIED in seen or condition_type == DENIED and APPROVED in seen:
            causes.append(errors.invalid(f"status.conditions[{index}].type", condition_type,
                                         "Approved and Denied conditions are mutually exclusive"))
    if old is not None:
        for condition_type in (APPROVED, DENIED):
            if has_condition(old, condition_type) and not has_condition(csr, condition_type):
                causes.append(errors.forbidden("status.conditions", f'updates may not remove a condition of type "{condition_type}"'))
        old_certificate = (old.get("status") or {}).get("certificate")
        if old_certificate and (csr.get("status") or {}).get("certificate") != old_certificate:
            causes.append(errors.forbidden("status.certificate", "updates may not modify existing certificate content"))
    if (csr.get("status") or {}).get("certificate"):
        if not is_approved(csr):
            causes.append(errors.invalid("status.certificate", "<certificate data>",
                                         "certificate issued only for approved requests"))
        elif b"-----BEGIN CERTIFICATE-----" not in certificate_pem(csr):
            causes.append(errors.invalid("status.certificate", "<certificate data>", "must contain at least one CERTIFICATE PEM block"))
    return causes


def raise_if(causes: list[dict[str, str]], csr: dict[str, Any]) -> None:
    if causes:
        raise errors.Invalid("CertificateSigningRequest", (csr.get("metadata") or {}).get("name") or "", causes,
                             group="certificates.k8s.io")


# --- what the API server keeps or resets (upstream's csrStrategy and its subresources) ----

def prepare_for_create(csr: dict[str, Any], user_name: str, groups: tuple[str, ...], uid: str = "",
                       extra: dict[str, list[str]] | None = None) -> None:
    """The requestor comes from the request's identity, never from the body; status starts empty."""
    spec = csr.setdefault("spec", {}) if isinstance(csr.get("spec"), dict) else csr.setdefault("spec", {})
    for key in ("username", "uid", "groups", "extra"):
        spec.pop(key, None)
    if user_name:
        spec["username"] = user_name
    if uid:
        spec["uid"] = uid
    if groups:
        spec["groups"] = list(groups)
    if extra:
        spec["extra"] = extra
    csr["status"] = {}


def prepare_for_update(new: dict[str, Any], old: dict[str, Any]) -> None:
    """The main resource: spec and status come from the stored object (spec is immutable,
    status changes only through /status and /approval)."""
    new["spec"] = old.get("spec")
    new["status"] = old.get("status") or {}


def prepare_for_status_update(new: dict[str, Any], old: dict[str, Any]) -> None:
    """/status may set the certificate and non-approval conditions; Approved/Denied
    conditions stay as they are."""
    new["spec"] = old.get("spec")
    approval = [c for c in conditions(old) if c.get("type") in (APPROVED, DENIED)]
    others = [c for c in conditions(new) if c.get("type") not in (APPROVED, DENIED)]
    status = dict(new.get("status") or {})
    status["conditions"] = approval + others
    if not status["conditions"]:
        status.pop("conditions")
    new["status"] = status


def prepare_for_approval_update(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """/approval changes only the conditions."""
    merged = {key: value for key, value in old.items() if key != "status"}
    merged["metadata"] = dict(old["metadata"])
    status = dict(old.get("status") or {})
    new_conditions = conditions(new)
    if new_conditions:
        status["conditions"] = new_conditions
    else:
        status.pop("conditions", None)
    merged["status"] = status
    return merged
