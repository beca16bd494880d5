"""Validation of API objects (JSON dicts) on create and update, with upstream's messages.

`validate_create(resource, obj)` and `validate_update(resource, new, old)` collect every
field error (upstream's `field.ErrorList`) and raise one `errors.Invalid` carrying them all,
so kubectl prints `The <Kind> "<name>" is invalid: <field>: <message>` exactly as upstream.
Objects are expected to be defaulted already (the server runs `defaults.apply_defaults`
first), as upstream validates the defaulted internal object.

Rules, limits, regexes and wording follow k8s.io/apimachinery `pkg/util/validation`,
`pkg/api/validation/objectmeta.go` and kubernetes `pkg/apis/{core,apps,batch}/validation`.
"""

from __future__ import annotations

import collections
import copy
import functools
import json
import re
from typing import Any, Callable, Iterable

import orjson

from pyk8s.api import base64bytes, errors
from pyk8s.api.quantity import parse_quantity
from pyk8s.api.resources import Resource

# -- string formats (apimachinery pkg/util/validation) ------------------------

DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + "(\\." + DNS1123_LABEL_FMT + ")*"
DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
LABEL_VALUE_FMT = "(" + QUALIFIED_NAME_FMT + ")?"
CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
ENV_VAR_NAME_FMT = "[-._a-zA-Z][-._a-zA-Z0-9]*"

_DNS1123_LABEL = re.compile(f"^{DNS1123_LABEL_FMT}$")
_DNS1123_SUBDOMAIN = re.compile(f"^{DNS1123_SUBDOMAIN_FMT}$")
_DNS1035_LABEL = re.compile(f"^{DNS1035_LABEL_FMT}$")
_QUALIFIED_NAME = re.compile(f"^{QUALIFIED_NAME_FMT}$")
_LABEL_VALUE = re.compile(f"^{LABEL_VALUE_FMT}$")
_CONFIG_KEY = re.compile(f"^{CONFIG_KEY_FMT}$")
_PORT_NAME_CHARSET = re.compile("^[-a-z0-9]+$")

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
QUALIFIED_NAME_MAX = 63
LABEL_VALUE_MAX = 63
TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
MAX_SECRET_SIZE = 1024 * 1024  # also ConfigMaps' limit
DNS1035_LABEL_MAX = 63
CRONJOB_NAME_MAX = DNS1035_LABEL_MAX - 11  # room for the job-name suffix the controller appends
NODE_PORT_RANGE = (30000, 32767)
MAX_INT32 = 2**31 - 1

_DNS1123_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                      "and must start and end with an alphanumeric character")
_DNS1123_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                          "'-' or '.', and must start and end with an alphanumeric character")
_DNS1035_LABEL_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                      "start with an alphabetic character, and end with an alphanumeric character")
_QUALIFIED_NAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', "
                       "and must start and end with an alphanumeric character")
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, "
                    "'-', '_' or '.', and must start and end with an alphanumeric character")
_CONFIG_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
_NOT_NEGATIVE = "must be greater than or equal to 0"
_NOT_POSITIVE = "must be greater than zero"
_IMMUTABLE = "field is immutable"
_FILE_MODE_MSG = "must be a number between 0 and 0777 (octal), both inclusive"


def regex_error(message: str, fmt: str, *examples: str) -> str:
    """Upstream's RegexError text, double space before ' or ' included (it is in upstream)."""
    if not examples:
        return f"{message} (regex used for validation is '{fmt}')"
    text = message + " (e.g. "
    for index, example in enumerate(examples):
        if index:
            text += " or "
        text += f"'{example}', "
    return text + f"regex used for validation is '{fmt}')"


def max_len_error(length: int) -> str:
    return f"must be no more than {length} characters"


def inclusive_range_error(low: int, high: int) -> str:
    return f"must be between {low} and {high}, inclusive"


def _remembered(rule: Callable[[str], list[str]]) -> Callable[[str], list[str]]:
    """A string rule's answers kept for the strings seen most (label keys and values, names
    repeat across objects); each caller gets its own list."""
    cached = functools.lru_cache(maxsize=8192)(lambda value: tuple(rule(value)))

    def checked(value: str) -> list[str]:
        return list(cached(value)) if type(value) is str else rule(value)

    checked.__name__, checked.__doc__ = rule.__name__, rule.__doc__
    return checked


@_remembered
def dns1123_label_errors(value: str) -> list[str]:
    messages = []
    if len(value) > DNS1123_LABEL_MAX:
        messages.append(max_len_error(DNS1123_LABEL_MAX))
    if not _DNS1123_LABEL.match(value):
        if _DNS1123_SUBDOMAIN.match(value):
            messages.append("must not contain dots")
        else:
            messages.append(regex_error(_DNS1123_LABEL_MSG, DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return messages


@_remembered
def dns1123_subdomain_errors(value: str) -> list[str]:
    messages = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        messages.append(max_len_error(DNS1123_SUBDOMAIN_MAX))
    if not _DNS1123_SUBDOMAIN.match(value):
        messages.append(regex_error(_DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, "example.com"))
    return messages


@_remembered
def dns1035_label_errors(value: str) -> list[str]:
    messages = []
    if len(value) > DNS1035_LABEL_MAX:
        messages.append(max_len_error(DNS1035_LABEL_MAX))
    if not _DNS1035_LABEL.match(value):
        messages.append(regex_error(_DNS1035_LABEL_MSG, DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return messages


@_remembered
def qualified_name_errors(value: str) -> list[str]:
    """Label keys, annotation keys, finalizers: `[prefix/]name`."""
    messages: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            messages.append("prefix part must be non-empty")
        else:
            messages.extend("prefix part " + m for m in dns1123_subdomain_errors(prefix))
    else:
        return ["a qualified name " + regex_error(_QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        messages.append("name part must be non-empty")
    elif len(name) > QUALIFIED_NAME_MAX:
        messages.append("name part " + max_len_error(QUALIFIED_NAME_MAX))
    if name and not _QUALIFIED_NAME.match(name):
        messages.append("name part " + regex_error(_QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc"))
    return messages


@_remembered
def label_value_errors(value: str) -> list[str]:
    messages = []
    if len(value) > LABEL_VALUE_MAX:
        messages.append(max_len_error(LABEL_VALUE_MAX))
    if not _LABEL_VALUE.match(value):
        messages.append(regex_error(_LABEL_VALUE_MSG, LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return messages


def config_key_errors(value: str) -> list[str]:
    messages = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        messages.append(max_len_error(DNS1123_SUBDOMAIN_MAX))
    if not _CONFIG_KEY.match(value):
        messages.append(regex_error(_CONFIG_KEY_MSG, CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    if value == ".":
        messages.append("must not be '.'")
    elif value == "..":
        messages.append("must not be '..'")
    elif value.startswith(".."):
        messages.append("must not start with '..'")
    return messages


def port_name_errors(value: str) -> list[str]:
    messages = []
    if len(value) > 15:
        messages.append(max_len_error(15))
    if not _PORT_NAME_CHARSET.match(value):
        messages.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", value):
        messages.append("must contain at least one letter (a-z)")
    if "--" in value:
        messages.append("must not contain consecutive hyphens")
    if value and (value[0] == "-" or value[-1] == "-"):
        messages.append("must not begin or end with a hyphen")
    return messages


def port_number_errors(value: Any) -> list[str]:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535:
        return []
    return [inclusive_range_error(1, 65535)]


def path_segment_errors(value: str) -> list[str]:
    for illegal in (".", ".."):
        if value == illegal:
            return [f"may not be '{illegal}'"]
    return [f"may not contain '{illegal}'" for illegal in ("/", "%") if illegal in value]


def _mask_trailing_dash(name: str) -> str:
    """generateName prefixes may end in '-' (the random suffix follows)."""
    return name[:-2] + "a" if len(name) > 1 and name.endswith("-") else name


def name_is_dns_subdomain(name: str, prefix: bool) -> list[str]:
    return dns1123_subdomain_errors(_mask_trailing_dash(name) if prefix else name)


def name_is_dns_label(name: str, prefix: bool) -> list[str]:
    return dns1123_label_errors(_mask_trailing_dash(name) if prefix else name)


def name_is_dns1035_label(name: str, prefix: bool) -> list[str]:
    return dns1035_label_errors(_mask_trailing_dash(name) if prefix else name)


def name_is_path_segment(name: str, prefix: bool) -> list[str]:
    return [m for m in path_segment_errors(name) if not (prefix and m.startswith("may not be '"))]


# Object names per kind (upstream's ValidateXxxName): most are DNS-1123 subdomains.
_NAME_RULES: dict[tuple[str, str], Callable[[str, bool], list[str]]] = {
    ("", "Namespace"): name_is_dns_label,
    ("", "Service"): name_is_dns1035_label,
    ("", "PersistentVolume"): name_is_path_segment,
    ("", "PersistentVolumeClaim"): name_is_path_segment,
    # RBAC names are path segments (system:node, kubeadm:...), as upstream's ValidateRBACName
    ("rbac.authorization.k8s.io", "Role"): name_is_path_segment,
    ("rbac.authorization.k8s.io", "ClusterRole"): name_is_path_segment,
    ("rbac.authorization.k8s.io", "RoleBinding"): name_is_path_segment,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): name_is_path_segment,
}


# -- error collection -------------------------------------------------------

def _not_found(path: str, value: Any) -> dict[str, str]:
    return {"reason": "FieldValueNotFound", "message": f"Not found: {errors._render(value)}", "field": path}


def _invalid_rendered(path: str, rendered: str, detail: str) -> dict[str, str]:
    """An Invalid cause whose value is already rendered (Go `%#v` forms like map[string]string{...})."""
    return {"reason": "FieldValueInvalid", "message": f"Invalid value: {rendered}: {detail}", "field": path}


def go_string_map(value: Any) -> str:
    """Go's %#v of a map[string]string: keys sorted, `map[string]string(nil)` when absent."""
    if not isinstance(value, dict):
        return "map[string]string(nil)"
    items = ", ".join(f"{_go_quote(k)}:{_go_quote(v)}" for k, v in sorted(value.items()))
    return "map[string]string{" + items + "}"


def _go_quote(value: Any) -> str:
    return json.dumps(str(value), ensure_ascii=False)


def go_label_selector(selector: Any) -> str:
    """Go's %#v of a metav1.LabelSelector, as upstream prints it in `field is immutable`."""
    selector = selector if isinstance(selector, dict) else {}
    expressions = selector.get("matchExpressions")
    if isinstance(expressions, list) and expressions:
        rendered = []
        for expression in expressions:
            expression = expression if isinstance(expression, dict) else {}
            values = expression.get("values")
            values_text = ("[]string{" + ", ".join(_go_quote(v) for v in values) + "}") if values else "[]string(nil)"
            rendered.append(f"v1.LabelSelectorRequirement{{Key:{_go_quote(expression.get('key', ''))}, "
                            f"Operator:{_go_quote(expression.get('operator', ''))}, Values:{values_text}}}")
        expressions_text = "[]v1.LabelSelectorRequirement{" + ", ".join(rendered) + "}"
    else:
        expressions_text = "[]v1.LabelSelectorRequirement(nil)"
    return (f"v1.LabelSelector{{MatchLabels:{go_string_map(selector.get('matchLabels'))}, "
            f"MatchExpressions:{expressions_text}}}")


def _go_string_slice(values: Iterable[Any]) -> str:
    return "[]string{" + ", ".join(_go_quote(v) for v in values) + "}"


class _Causes(list):
    """A field.ErrorList: append causes, extend with helper output."""

    def invalid_each(self, path: str, value: Any, messages: Iterable[str]) -> None:
        for message in messages:
            self.append(errors.invalid(path, value, message))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _nonnegative(causes: _Causes, value: Any, path: str) -> None:
    if _is_int(value) and value < 0:
        causes.append(errors.invalid(path, value, _NOT_NEGATIVE))


# -- object metadata -----------------------------------------------------

def validate_labels(causes: _Causes, labels: Any, path: str) -> None:
    for key, value in _dict(labels).items():
        causes.invalid_each(path, key, qualified_name_errors(key))
        causes.invalid_each(path, value, label_value_errors(str(value)) if isinstance(value, str) else ["must be a string"])


def validate_annotations(causes: _Causes, annotations: Any, path: str) -> None:
    total = 0
    for key, value in _dict(annotations).items():
        causes.invalid_each(path, key, qualified_name_errors(key.lower()))
        total += len(key) + len(str(value))
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        causes.append(errors.too_long(path, "", TOTAL_ANNOTATION_SIZE_LIMIT))


def validate_object_meta(causes: _Causes, metadata: Any, namespaced: bool,
                         name_rule: Callable[[str, bool], list[str]], path: str = "metadata") -> None:
    metadata = _dict(metadata)
    generate_name = metadata.get("generateName") or ""
    if generate_name:
        causes.invalid_each(f"{path}.generateName", generate_name, name_rule(generate_name, True))
    name = metadata.get("name") or ""
    if not name:
        causes.append(errors.required(f"{path}.name", "name or generateName is required"))
    else:
        causes.invalid_each(f"{path}.name", name, name_rule(name, False))
    namespace = metadata.get("namespace") or ""
    if namespaced:
        if not namespace:
            causes.append(errors.required(f"{path}.namespace"))
        else:
            causes.invalid_each(f"{path}.namespace", namespace, dns1123_label_errors(namespace))
    elif namespace:
        causes.append(errors.forbidden(f"{path}.namespace", "not allowed on this type"))
    _nonnegative(causes, metadata.get("generation"), f"{path}.generation")
    validate_labels(causes, metadata.get("labels"), f"{path}.labels")
    validate_annotations(causes, metadata.get("annotations"), f"{path}.annotations")
    for index, reference in enumerate(_list(metadata.get("ownerReferences"))):
        reference = _dict(reference)
        ref_path = f"{path}.ownerReferences[{index}]"
        version = str(reference.get("apiVersion") or "").rpartition("/")[2]
        if not version:
            causes.append(errors.invalid(f"{ref_path}.apiVersion", version, "version must not be empty"))
        for key in ("kind", "name", "uid"):
            if not reference.get(key):
                causes.append(errors.invalid(f"{ref_path}.{key}", reference.get(key) or "", f"{key} must not be empty"))
    controllers = [r for r in _list(metadata.get("ownerReferences")) if _dict(r).get("controller") is True]
    if len(controllers) > 1:
        names = ", ".join(f"{_dict(r).get('kind')}/{_dict(r).get('name')}" for r in controllers)
        causes.append(errors.invalid(f"{path}.ownerReferences", [r for r in controllers],
                                     f"Only one reference can have Controller set to true. Found \"true\" in references for {names}"))
    seen_finalizers: set[str] = set()
    for finalizer in _list(metadata.get("finalizers")):
        causes.invalid_each(f"{path}.finalizers", finalizer, qualified_name_errors(str(finalizer)))
        if finalizer in seen_finalizers:
            causes.append(errors.duplicate(f"{path}.finalizers", finalizer))
        seen_finalizers.add(finalizer)


def validate_object_meta_update(causes: _Causes, new: Any, old: Any, path: str = "metadata") -> None:
    new, old = _dict(new), _dict(old)
    for key in ("name", "namespace"):
        if (new.get(key) or "") != (old.get(key) or ""):
            causes.append(errors.invalid(f"{path}.{key}", new.get(key) or "", _IMMUTABLE))
    # Clients may omit uid/creationTimestamp (the server carries them over): only a
    # different value is a change.
    for key in ("uid", "creationTimestamp"):
        if new.get(key) and old.get(key) and new[key] != old[key]:
            causes.append(errors.invalid(f"{path}.{key}", new[key], _IMMUTABLE))
    if _is_int(new.get("generation")) and _is_int(old.get("generation")) and new["generation"] < old["generation"]:
        causes.append(errors.invalid(f"{path}.generation", new["generation"], "must not be decremented"))
    if old.get("deletionTimestamp"):
        old_finalizers = set(_list(old.get("finalizers")))
        for finalizer in _list(new.get("finalizers")):
            if finalizer not in old_finalizers:
                causes.append(errors.forbidden(f"{path}.finalizers",
                                               f"no new finalizers can be added if the object is being deleted, found new finalizer {json.dumps(finalizer)}"))


# -- label selectors ---------------------------------------------------------

def validate_label_selector(causes: _Causes, selector: Any, path: str) -> None:
    selector = _dict(selector)
    for index, expression in enumerate(_list(selector.get("matchExpressions"))):
        expression = _dict(expression)
        expr_path = f"{path}.matchExpressions[{index}]"
        operator = expression.get("operator")
        values = _list(expression.get("values"))
        if operator in ("In", "NotIn"):
            if not values:
                causes.append(errors.required(f"{expr_path}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                causes.append(errors.forbidden(f"{expr_path}.values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            causes.append(errors.invalid(f"{expr_path}.operator", operator or "", "not a valid selector operator"))
        key = str(expression.get("key") or "")
        causes.invalid_each(f"{expr_path}.key", key, qualified_name_errors(key))
    validate_labels(causes, selector.get("matchLabels"), f"{path}.matchLabels")


def selector_matches(selector: Any, labels: Any) -> bool:
    """metav1.LabelSelector semantics (matchLabels AND matchExpressions)."""
    selector, labels = _dict(selector), _dict(labels)
    for key, value in _dict(selector.get("matchLabels")).items():
        if labels.get(key) != value:
            return False
    for expression in _list(selector.get("matchExpressions")):
        expression = _dict(expression)
        key, operator = expression.get("key"), expression.get("operator")
        values = _list(expression.get("values"))
        if operator == "In" and (key not in labels or labels[key] not in values):
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def _selector_is_empty(selector: Any) -> bool:
    selector = _dict(selector)
    return not selector.get("matchLabels") and not selector.get("matchExpressions")


# -- pods ---------------------------------------------------------------------

_PROTOCOLS = ["SCTP", "TCP", "UDP"]
_RESTART_POLICIES = ["Always", "OnFailure", "Never"]
_DNS_POLICIES = ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"]
_PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
_STANDARD_CONTAINER_RESOURCES = {"cpu", "memory", "ephemeral-storage"}
_TOLERATION_OPERATORS = ["Equal", "Exists"]
_TAINT_EFFECTS = ["NoExecute", "NoSchedule", "PreferNoSchedule"]

_VOLUME_SOURCES = (
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs",
    "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker",
    "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk",
    "photonPersistentDisk", "projected", "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral",
    "image",
)


def _validate_volumes(causes: _Causes, volumes: Any, path: str) -> set[str]:
    names: set[str] = set()
    for index, volume in enumerate(_list(volumes)):
        volume = _dict(volume)
        vol_path = f"{path}[{index}]"
        sources = [key for key in _VOLUME_SOURCES if volume.get(key) is not None]
        if not sources:
            causes.append(errors.required(vol_path, "must specify a volume type"))
        for extra in sources[1:]:
            causes.append(errors.forbidden(f"{vol_path}.{extra}", "may not specify more than 1 volume type"))
        _validate_volume_source(causes, volume, vol_path)
        name = volume.get("name") or ""
        if not name:
            causes.append(errors.required(f"{vol_path}.name"))
        else:
            causes.invalid_each(f"{vol_path}.name", name, dns1123_label_errors(name))
        if name in names:
            causes.append(errors.duplicate(f"{vol_path}.name", name))
        names.add(name)
    return names


def _validate_file_mode(causes: _Causes, mode: Any, path: str) -> None:
    if mode is not None and (not _is_int(mode) or not 0 <= mode <= 0o777):
        causes.append(errors.invalid(path, mode, _FILE_MODE_MSG))


def _validate_volume_source(causes: _Causes, volume: dict, path: str) -> None:
    for key, name_field in (("configMap", "name"), ("secret", "secretName"),
                            ("persistentVolumeClaim", "claimName"), ("hostPath", "path")):
        source = volume.get(key)
        if not isinstance(source, dict):
            continue
        if not source.get(name_field):
            causes.append(errors.required(f"{path}.{key}.{name_field}"))
        if key in ("configMap", "secret"):
            _validate_file_mode(causes, source.get("defaultMode"), f"{path}.{key}.defaultMode")
    empty_dir = volume.get("emptyDir")
    if isinstance(empty_dir, dict):
        if empty_dir.get("medium") not in (None, "", "Memory", "HugePages") and not str(empty_dir.get("medium")).startswith("HugePages-"):
            causes.append(errors.not_supported(f"{path}.emptyDir.medium", empty_dir.get("medium"), ["", "Memory", "HugePages"]))
        if empty_dir.get("sizeLimit") is not None:
            _validate_quantity(causes, empty_dir["sizeLimit"], f"{path}.emptyDir.sizeLimit")


def _validate_quantity(causes: _Causes, value: Any, path: str):
    try:
        quantity = parse_quantity(value)
    except ValueError as error:
        causes.append(errors.invalid(path, value, str(error)))
        return None
    if quantity < 0:
        causes.append(errors.invalid(path, value, _NOT_NEGATIVE))
    return quantity


def _resource_name_ok(name: str) -> bool:
    if name in _STANDARD_CONTAINER_RESOURCES or name.startswith("hugepages-"):
        return True
    # Extended resources must be domain-prefixed and not in the kubernetes.io namespace.
    return "/" in name and not name.split("/", 1)[0].endswith("kubernetes.io") and not qualified_name_errors(name)


def _overcommit_allowed(name: str) -> bool:
    return name in _STANDARD_CONTAINER_RESOURCES


def _validate_resources(causes: _Causes, resources: Any, path: str) -> None:
    resources = _dict(resources)
    limits: dict[str, Any] = {}
    for kind in ("limits", "requests"):
        for name, value in _dict(resources.get(kind)).items():
            entry_path = f"{path}.{kind}[{name}]"
            if not _resource_name_ok(name):
                causes.append(errors.invalid(entry_path, name, "must be a standard resource for containers"))
                continue
            quantity = _validate_quantity(causes, value, entry_path)
            if quantity is None:
                continue
            if not _overcommit_allowed(name) and not name.startswith("hugepages-") and quantity.denominator != 1:
                causes.append(errors.invalid(entry_path, value, "must be an integer"))
            if kind == "limits":
                limits[name] = (quantity, value)
                continue
            if name in limits:
                limit, limit_text = limits[name]
                if quantity != limit and not _overcommit_allowed(name):
                    causes.append(errors.invalid(f"{path}.requests", str(value), f"must be equal to {name} limit of {limit_text}"))
                elif quantity > limit:
                    causes.append(errors.invalid(f"{path}.requests", str(value), f"must be less than or equal to {name} limit of {limit_text}"))


def _validate_probe(causes: _Causes, probe: Any, path: str) -> None:
    if not isinstance(probe, dict):
        return
    for key in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
        _nonnegative(causes, probe.get(key), f"{path}.{key}")
    handlers = [key for key in ("exec", "httpGet", "tcpSocket", "grpc") if probe.get(key) is not None]
    if not handlers:
        causes.append(errors.required(path, "must specify a handler type"))
    for extra in handlers[1:]:
        causes.append(errors.forbidden(f"{path}.{extra}", "may not specify more than 1 handler type"))
    for key in ("httpGet", "tcpSocket"):
        handler = probe.get(key)
        if isinstance(handler, dict):
            _validate_port_num_or_name(causes, handler.get("port"), f"{path}.{key}.port")


def _validate_port_num_or_name(causes: _Causes, port: Any, path: str) -> None:
    if isinstance(port, str) and not port.isdigit():
        if not port:
            causes.append(errors.required(path))
        causes.invalid_each(path, port, port_name_errors(port) if port else [])
        return
    number = int(port) if isinstance(port, str) else port
    causes.invalid_each(path, number, port_number_errors(number))


def _validate_container(causes: _Causes, container: dict, path: str, volumes: set[str], is_init: bool) -> None:
    image = container.get("image")
    if not image:
        causes.append(errors.required(f"{path}.image"))
    elif isinstance(image, str) and image != image.strip():
        causes.append(errors.invalid(f"{path}.image", image, "must not have leading or trailing whitespace"))
    port_names: set[str] = set()
    for index, port in enumerate(_list(container.get("ports"))):
        port = _dict(port)
        port_path = f"{path}.ports[{index}]"
        name = port.get("name") or ""
        if name:
            messages = port_name_errors(name)
            if messages:
                causes.invalid_each(f"{port_path}.name", name, messages)
            elif name in port_names:
                causes.append(errors.duplicate(f"{port_path}.name", name))
            port_names.add(name)
        container_port = port.get("containerPort")
        if not container_port:
            causes.append(errors.required(f"{port_path}.containerPort"))
        else:
            causes.invalid_each(f"{port_path}.containerPort", container_port, port_number_errors(container_port))
        if port.get("hostPort"):
            causes.invalid_each(f"{port_path}.hostPort", port["hostPort"], port_number_errors(port["hostPort"]))
        protocol = port.get("protocol")
        if not protocol:
            causes.append(errors.required(f"{port_path}.protocol"))
        elif protocol not in _PROTOCOLS:
            causes.append(errors.not_supported(f"{port_path}.protocol", protocol, _PROTOCOLS))
    for index, env in enumerate(_list(container.get("env"))):
        env = _dict(env)
        env_name = env.get("name") or ""
        if not env_name:
            causes.append(errors.required(f"{path}.env[{index}].name"))
        elif not all(32 < ord(ch) < 127 and ch != "=" for ch in env_name):
            causes.append(errors.invalid(f"{path}.env[{index}].name", env_name,
                                         "a valid environment variable name must consist only of printable ASCII characters other than '='"))
        if env.get("value") and env.get("valueFrom") is not None:
            causes.append(errors.invalid(f"{path}.env[{index}].valueFrom", "",
                                         "may not be specified when `value` is not empty"))
    mount_paths: set[str] = set()
    for index, mount in enumerate(_list(container.get("volumeMounts"))):
        mount = _dict(mount)
        mount_path = f"{path}.volumeMounts[{index}]"
        mount_name = mount.get("name") or ""
        if not mount_name:
            causes.append(errors.required(f"{mount_path}.name"))
        if mount_name not in volumes:
            causes.append(_not_found(f"{mount_path}.name", mount_name))
        target = mount.get("mountPath") or ""
        if not target:
            causes.append(errors.required(f"{mount_path}.mountPath"))
        if target and target in mount_paths:
            causes.append(errors.invalid(f"{mount_path}.mountPath", target, "must be unique"))
        mount_paths.add(target)
    if not is_init or container.get("restartPolicy") == "Always":
        for key in ("livenessProbe", "readinessProbe", "startupProbe"):
            _validate_probe(causes, container.get(key), f"{path}.{key}")
    else:
        for key in ("livenessProbe", "readinessProbe", "startupProbe"):
            if container.get(key) is not None:
                causes.append(errors.forbidden(f"{path}.{key}", "may not be set for init containers without restartPolicy=Always"))
    policy = container.get("imagePullPolicy")
    if not policy:
        causes.append(errors.required(f"{path}.imagePullPolicy"))
    elif policy not in _PULL_POLICIES:
        causes.append(errors.not_supported(f"{path}.imagePullPolicy", policy, _PULL_POLICIES))
    message_policy = container.get("terminationMessagePolicy")
    if not message_policy:
        causes.append(errors.required(f"{path}.terminationMessagePolicy", "must be 'File' or 'FallbackToLogsOnError'"))
    elif message_policy not in ("File", "FallbackToLogsOnError"):
        causes.append(errors.invalid(f"{path}.terminationMessagePolicy", message_policy, "must be 'File' or 'FallbackToLogsOnError'"))
    _validate_resources(causes, container.get("resources"), f"{path}.resources")


# Pod specs found valid, by their JSON: the pods of one template (a ReplicaSet's) repeat
# the same spec, and validating it is most of a pod create's validation.
_VALID_POD_SPECS: collections.OrderedDict[bytes, None] = collections.OrderedDict()
_VALID_POD_SPECS_MAX = 256


def validate_pod_spec(causes: _Causes, spec: Any, path: str = "spec") -> None:
    spec = _dict(spec)
    try:
        key = orjson.dumps(spec)
    except TypeError:
        key = None
    if key is not None and key in _VALID_POD_SPECS:
        _VALID_POD_SPECS.move_to_end(key)
        return
    found = len(causes)
    _collect_pod_spec(causes, spec, path)
    if key is not None and len(causes) == found:
        _VALID_POD_SPECS[key] = None
        if len(_VALID_POD_SPECS) > _VALID_POD_SPECS_MAX:
            _VALID_POD_SPECS.popitem(last=False)


def _collect_pod_spec(causes: _Causes, spec: dict, path: str) -> None:
    volumes = _validate_volumes(causes, spec.get("volumes"), f"{path}.volumes")
    container_names: set[str] = set()
    containers = _list(spec.get("containers"))
    if not containers:
        causes.append(errors.required(f"{path}.containers"))
    for key, is_init in (("initContainers", True), ("containers", False)):
        for index, container in enumerate(_list(spec.get(key))):
            container = _dict(container)
            container_path = f"{path}.{key}[{index}]"
            name = container.get("name") or ""
            if not name:
                causes.append(errors.required(f"{container_path}.name"))
            else:
                causes.invalid_each(f"{container_path}.name", name, dns1123_label_errors(name))
                if name in container_names:
                    causes.append(errors.duplicate(f"{container_path}.name", name))
            container_names.add(name)
            _validate_container(causes, container, container_path, volumes, is_init)
    restart_policy = spec.get("restartPolicy")
    if not restart_policy:
        causes.append(errors.required(f"{path}.restartPolicy"))
    elif restart_policy not in _RESTART_POLICIES:
        causes.append(errors.not_supported(f"{path}.restartPolicy", restart_policy, _RESTART_POLICIES))
    dns_policy = spec.get("dnsPolicy")
    if not dns_policy:
        causes.append(errors.required(f"{path}.dnsPolicy"))
    elif dns_policy not in _DNS_POLICIES:
        causes.append(errors.not_supported(f"{path}.dnsPolicy", dns_policy, _DNS_POLICIES))
    if dns_policy == "None" and not _dict(spec.get("dnsConfig")).get("nameservers"):
        causes.append(errors.required(f"{path}.dnsConfig", "must provide `dnsConfig` when `dnsPolicy` is None"))
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and (not _is_int(deadline) or not 1 <= deadline <= MAX_INT32):
        causes.append(errors.invalid(f"{path}.activeDeadlineSeconds", deadline, inclusive_range_error(1, MAX_INT32)))
    validate_labels(causes, spec.get("nodeSelector"), f"{path}.nodeSelector")
    for key, rule in (("serviceAccountName", dns1123_subdomain_errors), ("nodeName", dns1123_subdomain_errors),
                      ("hostname", dns1123_label_errors), ("subdomain", dns1123_label_errors)):
        value = spec.get(key)
        if value:
            causes.invalid_each(f"{path}.{key}", value, rule(str(value)))
    for index, toleration in enumerate(_list(spec.get("tolerations"))):
        _validate_toleration(causes, _dict(toleration), f"{path}.tolerations[{index}]")


def _validate_toleration(causes: _Causes, toleration: dict, path: str) -> None:
    key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    if key:
        causes.invalid_each(f"{path}.key", key, qualified_name_errors(key))
    elif operator != "Exists":
        causes.append(errors.invalid(f"{path}.operator", operator, "operator must be Exists when `key` is empty, which means \"match all values and all keys\""))
    if toleration.get("tolerationSeconds") is not None and toleration.get("effect") != "NoExecute":
        causes.append(errors.invalid(f"{path}.effect", toleration.get("effect") or "", "effect must be 'NoExecute' when `tolerationSeconds` is set"))
    if operator == "Equal":
        causes.invalid_each(f"{path}.value", toleration.get("value") or "", label_value_errors(str(toleration.get("value") or "")))
    elif operator == "Exists":
        if toleration.get("value"):
            causes.append(errors.invalid(f"{path}.operator", toleration.get("value"), "value must be empty when `operator` is 'Exists'"))
    else:
        causes.append(errors.not_supported(f"{path}.operator", operator, _TOLERATION_OPERATORS))
    effect = toleration.get("effect")
    if effect and effect not in _TAINT_EFFECTS:
        causes.append(errors.not_supported(f"{path}.effect", effect, _TAINT_EFFECTS))


def validate_pod_template(causes: _Causes, template: Any, path: str) -> None:
    template = _dict(template)
    metadata = _dict(template.get("metadata"))
    validate_labels(causes, metadata.get("labels"), f"{path}.metadata.labels")
    validate_annotations(causes, metadata.get("annotations"), f"{path}.metadata.annotations")
    validate_pod_spec(causes, template.get("spec"), f"{path}.spec")


POD_UPDATABLE_FIELDS = (
    "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
    "`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)


def _spec_diff(old: dict, new: dict) -> str:
    """A short field-by-field difference, in the spirit of the cmp.Diff upstream appends."""
    lines = ["  core.PodSpec{"]
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            lines.append(f"- \t{key}: {json.dumps(old.get(key), sort_keys=True)},")
            lines.append(f"+ \t{key}: {json.dumps(new.get(key), sort_keys=True)},")
    lines.append("  }")
    return "\n".join(lines) + "\n"


def _validate_pod_update(causes: _Causes, new: dict, old: dict) -> None:
    new_spec, old_spec = _dict(new.get("spec")), _dict(old.get("spec"))
    new_deadline, old_deadline = new_spec.get("activeDeadlineSeconds"), old_spec.get("activeDeadlineSeconds")
    if new_deadline is not None:
        if not _is_int(new_deadline) or not 0 <= new_deadline <= MAX_INT32:
            causes.append(errors.invalid("spec.activeDeadlineSeconds", new_deadline, inclusive_range_error(0, MAX_INT32)))
            return
        if _is_int(old_deadline) and old_deadline < new_deadline:
            causes.append(errors.invalid("spec.activeDeadlineSeconds", new_deadline, "must be less than or equal to previous value"))
            return
    elif old_deadline is not None:
        causes.append(errors.invalid("spec.activeDeadlineSeconds", None, "must not update from a positive integer to nil value"))
    for key in ("containers", "initContainers"):
        if len(_list(new_spec.get(key))) != len(_list(old_spec.get(key))):
            causes.append(errors.forbidden(f"spec.{key}", "pod updates may not add or remove containers"))
            return
    # Copy the allowed changes from the old spec onto the new one: what differs after that
    # is a forbidden change (upstream's "munged" pod spec comparison).
    munged = copy.deepcopy(new_spec)
    for key in ("containers", "initContainers"):
        for munged_container, old_container in zip(_list(munged.get(key)), _list(old_spec.get(key))):
            if isinstance(munged_container, dict) and isinstance(old_container, dict):
                if "image" in old_container:
                    munged_container["image"] = old_container["image"]
                else:
                    munged_container.pop("image", None)
    for key in ("activeDeadlineSeconds",):
        if key in old_spec:
            munged[key] = old_spec[key]
        else:
            munged.pop(key, None)
    old_tolerations = _list(old_spec.get("tolerations"))
    new_tolerations = _list(new_spec.get("tolerations"))
    if all(toleration in new_tolerations for toleration in old_tolerations):
        if "tolerations" in old_spec:
            munged["tolerations"] = old_spec["tolerations"]
        else:
            munged.pop("tolerations", None)
    old_grace = old_spec.get("terminationGracePeriodSeconds")
    if _is_int(old_grace) and old_grace < 0 and new_spec.get("terminationGracePeriodSeconds") == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    if munged != old_spec:
        causes.append(errors.forbidden(
            "spec", f"pod updates may not change fields other than {POD_UPDATABLE_FIELDS}\n{_spec_diff(old_spec, munged)}"))


# -- workloads --------------------------------------------------------------

def _template_labels(template: Any) -> Any:
    return _dict(_dict(template).get("metadata")).get("labels")


def _validate_selector_and_template(causes: _Causes, spec: dict, kind_word: str,
                                    restart_policies: list[str] | None) -> None:
    selector = spec.get("selector")
    if selector is None:
        causes.append(errors.required("spec.selector"))
    else:
        validate_label_selector(causes, selector, "spec.selector")
        if _selector_is_empty(selector):
            causes.append(errors.invalid("spec.selector", selector, f"empty selector is invalid for {kind_word}"))
    template = spec.get("template")
    if not isinstance(template, dict):
        causes.append(errors.required("spec.template"))
        return
    if selector is not None and not _selector_is_empty(selector):
        labels = _template_labels(template)
        if not selector_matches(selector, labels):
            causes.append(_invalid_rendered("spec.template.metadata.labels", go_string_map(labels),
                                            "`selector` does not match template `labels`"))
    validate_pod_template(causes, template, "spec.template")
    _validate_template_restart_policy(causes, template, "spec.template", restart_policies or ["Always"])


def _validate_template_restart_policy(causes: _Causes, template: dict, path: str, allowed: list[str]) -> None:
    policy = _dict(template.get("spec")).get("restartPolicy")
    if policy and policy not in allowed:
        causes.append(errors.not_supported(f"{path}.spec.restartPolicy", policy, allowed))


def _validate_int_or_percent(causes: _Causes, value: Any, path: str) -> float | None:
    """Returns the value as a number (percent as its number) for further checks."""
    if value is None:
        return None
    if isinstance(value, str):
        if not re.fullmatch(r"[0-9]+%", value):
            causes.append(errors.invalid(path, value, regex_error(
                "a valid percent string must be a numeric string followed by an ending '%'", "[0-9]+%", "1%", "93%")))
            return None
        number = int(value[:-1])
        if number > 100:
            causes.append(errors.invalid(path, value, "must not be greater than 100%"))
        return number
    if _is_int(value):
        _nonnegative(causes, value, path)
        return value
    causes.append(errors.invalid(path, value, "must be an integer or percentage (e.g '5%')"))
    return None


def _validate_deployment(causes: _Causes, obj: dict) -> None:
    spec = _dict(obj.get("spec"))
    _nonnegative(causes, spec.get("replicas"), "spec.replicas")
    _validate_selector_and_template(causes, spec, "deployment", None)
    # Deployments share upstream's ReplicaSet template check, wording included.
    _forbid_template_deadline(causes, spec, "ReplicaSet")
    strategy = _dict(spec.get("strategy"))
    strategy_type = strategy.get("type")
    if strategy_type == "Recreate":
        if strategy.get("rollingUpdate") is not None:
            causes.append(errors.forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'"))
    elif strategy_type == "RollingUpdate":
        rolling = _dict(strategy.get("rollingUpdate"))
        surge = _validate_int_or_percent(causes, rolling.get("maxSurge"), "spec.strategy.rollingUpdate.maxSurge")
        unavailable = _validate_int_or_percent(causes, rolling.get("maxUnavailable"), "spec.strategy.rollingUpdate.maxUnavailable")
        if surge == 0 and unavailable == 0:
            causes.append(errors.invalid("spec.strategy.rollingUpdate.maxUnavailable", rolling.get("maxUnavailable"),
                                         "may not be 0 when `maxSurge` is 0"))
    elif strategy_type:
        causes.append(errors.not_supported("spec.strategy.type", strategy_type, ["Recreate", "RollingUpdate"]))
    _nonnegative(causes, spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
    _nonnegative(causes, spec.get("minReadySeconds"), "spec.minReadySeconds")
    deadline = spec.get("progressDeadlineSeconds")
    if _is_int(deadline):
        _nonnegative(causes, deadline, "spec.progressDeadlineSeconds")
        if deadline <= (spec.get("minReadySeconds") or 0):
            causes.append(errors.invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"))


def _forbid_template_deadline(causes: _Causes, spec: dict, kind: str) -> None:
    if _dict(_dict(spec.get("template")).get("spec")).get("activeDeadlineSeconds") is not None:
        causes.append(errors.forbidden("spec.template.spec.activeDeadlineSeconds", f"activeDeadlineSeconds in {kind} is not Supported"))


def _validate_replicaset(causes: _Causes, obj: dict) -> None:
    spec = _dict(obj.get("spec"))
    _nonnegative(causes, spec.get("replicas"), "spec.replicas")
    _nonnegative(causes, spec.get("minReadySeconds"), "spec.minReadySeconds")
    _validate_selector_and_template(causes, spec, "deployment", None)  # upstream reuses this wording
    _forbid_template_deadline(causes, spec, "ReplicaSet")


def _validate_daemonset(causes: _Causes, obj: dict) -> None:
    spec = _dict(obj.get("spec"))
    _validate_selector_and_template(causes, spec, "daemonset", None)
    strategy = _dict(spec.get("updateStrategy"))
    strategy_type = strategy.get("type")
    if strategy_type == "RollingUpdate":
        rolling = _dict(strategy.get("rollingUpdate"))
        surge = _validate_int_or_percent(causes, rolling.get("maxSurge"), "spec.updateStrategy.rollingUpdate.maxSurge")
        unavailable = _validate_int_or_percent(causes, rolling.get("maxUnavailable"), "spec.updateStrategy.rollingUpdate.maxUnavailable")
        if surge == 0 and unavailable == 0:
            causes.append(errors.invalid("spec.updateStrategy.rollingUpdate.maxUnavailable", rolling.get("maxUnavailable"),
                                         "may not be 0 when `maxSurge` is 0"))
    elif strategy_type and strategy_type != "OnDelete":
        causes.append(errors.not_supported("spec.updateStrategy.type", strategy_type, ["OnDelete", "RollingUpdate"]))
    _nonnegative(causes, spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
    _nonnegative(causes, spec.get("minReadySeconds"), "spec.minReadySeconds")


def _validate_statefulset(causes: _Causes, obj: dict) -> None:
    spec = _dict(obj.get("spec"))
    policy = spec.get("podManagementPolicy")
    if policy and policy not in ("OrderedReady", "Parallel"):
        causes.append(errors.not_supported("spec.podManagementPolicy", policy, ["OrderedReady", "Parallel"]))
    strategy_type = _dict(spec.get("updateStrategy")).get("type")
    if strategy_type and strategy_type not in ("OnDelete", "RollingUpdate"):
        causes.append(errors.not_supported("spec.updateStrategy.type", strategy_type, ["OnDelete", "RollingUpdate"]))
    _nonnegative(causes, _dict(_dict(spec.get("updateStrategy")).get("rollingUpdate")).get("partition"),
                 "spec.updateStrategy.rollingUpdate.partition")
    _nonnegative(causes, spec.get("replicas"), "spec.replicas")
    _nonnegative(causes, spec.get("minReadySeconds"), "spec.minReadySeconds")
    retention = _dict(spec.get("persistentVolumeClaimRetentionPolicy"))
    for key in ("whenDeleted", "whenScaled"):
        value = retention.get(key)
        if value and value not in ("Retain", "Delete"):
            causes.append(errors.not_supported(f"spec.persistentVolumeClaimRetentionPolicy.{key}", value, ["Retain", "Delete"]))
    _validate_selector_and_template(causes, _with_claim_template_volumes(spec), "statefulset", None)
    _forbid_template_deadline(causes, spec, "StatefulSet")


def _with_claim_template_volumes(spec: dict) -> dict:
    """The spec with one persistentVolumeClaim volume per volumeClaimTemplate appended to the
    pod template: the StatefulSet controller adds those to every pod it creates (upstream
    updateStorage), so container volumeMounts may name a claim template."""
    template = spec.get("template")
    claims = _list(spec.get("volumeClaimTemplates"))
    if not isinstance(template, dict) or not claims:
        return spec
    pod_spec = _dict(template.get("spec"))
    volumes = _list(pod_spec.get("volumes"))
    named = {_dict(volume).get("name") for volume in volumes}
    claim_names = [_dict(_dict(claim).get("metadata")).get("name") for claim in claims]
    extra = [{"name": name, "persistentVolumeClaim": {"claimName": name}}
             for name in claim_names if name and name not in named]
    return {**spec, "template": {**template, "spec": {**pod_spec, "volumes": [*volumes, *extra]}}}


def _validate_replication_controller(causes: _Causes, obj: dict) -> None:
    spec = _dict(obj.get("spec"))
    _nonnegative(causes, spec.get("replicas"), "spec.replicas")
    _nonnegative(causes, spec.get("minReadySeconds"), "spec.minReadySeconds")
    selector = _dict(spec.get("selector"))
    if not selector:
        causes.append(errors.required("spec.selector"))
    else:
        validate_labels(causes, selector, "spec.selector")
    template = spec.get("template")
    if not isinstance(template, dict):
        causes.append(errors.required("spec.template"))
        return
    labels = _template_labels(template)
    if selector and any(_dict(labels).get(k) != v for k, v in selector.items()):
        causes.append(_invalid_rendered("spec.template.metadata.labels", go_string_map(labels),
                                        "`selector` does not match template `labels`"))
    validate_pod_template(causes, template, "spec.template")
    _validate_template_restart_policy(causes, template, "spec.template", ["Always"])
    _forbid_template_deadline(causes, spec, "ReplicationController")


# -- batch ----------------------------------------------------------------

def _validate_job_spec(causes: _Causes, spec: dict, path: str, require_selector: bool) -> None:
    for key in ("parallelism", "completions", "backoffLimit", "ttlSecondsAfterFinished"):
        _nonnegative(causes, spec.get(key), f"{path}.{key}")
    deadline = spec.get("activeDeadlineSeconds")
    if _is_int(deadline) and deadline <= 0:
        causes.append(errors.invalid(f"{path}.activeDeadlineSeconds", deadline, _NOT_POSITIVE))
    mode = spec.get("completionMode")
    if mode and mode not in ("NonIndexed", "Indexed"):
        causes.append(errors.not_supported(f"{path}.completionMode", mode, ["NonIndexed", "Indexed"]))
    if mode == "Indexed" and spec.get("completions") is None:
        causes.append(errors.required(f"{path}.completions", "when completion mode is Indexed"))
    selector = spec.get("selector")
    if selector is None:
        if require_selector:
            causes.append(errors.required(f"{path}.selector"))
    else:
        validate_label_selector(causes, selector, f"{path}.selector")
    template = spec.get("template")
    if not isinstance(template, dict):
        causes.append(errors.required(f"{path}.template"))
        return
    if selector is not None and not _selector_is_empty(selector) and not selector_matches(selector, _template_labels(template)):
        causes.append(_invalid_rendered(f"{path}.template.metadata.labels", go_string_map(_template_labels(template)),
                                        "`selector` does not match template `labels`"))
    validate_pod_template(causes, template, f"{path}.template")
    policy = _dict(template.get("spec")).get("restartPolicy")
    if policy not in ("OnFailure", "Never"):
        causes.append(errors.not_supported(f"{path}.template.spec.restartPolicy", policy or "", ["OnFailure", "Never"]))


def _validate_job(causes: _Causes, obj: dict) -> None:
    spec = _dict(obj.get("spec"))
    # Without manualSelector the registry generates the selector from the uid
    # (defaults.generate_job_selector); only a manual selector must be given.
    _validate_job_spec(causes, spec, "spec", spec.get("manualSelector") is True)


_CRON_FIELDS = (("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
                ("month", 1, 12, {m: i + 1 for i, m in enumerate(
                    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}),
                ("day of week", 0, 6, {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}))
_CRON_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_GO_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")


def cron_schedule_error(schedule: str) -> str | None:
    """Parse as robfig/cron's standard parser does; its error text, or None when valid."""
    if not schedule:
        return "empty spec string"
    if schedule.startswith("@"):
        if schedule in _CRON_DESCRIPTORS:
            return None
        if schedule.startswith("@every "):
            duration = schedule[len("@every "):]
            return None if _GO_DURATION.match(duration) else f"failed to parse duration {schedule}: time: invalid duration {json.dumps(duration)}"
        return f"unrecognized descriptor: {schedule}"
    fields = schedule.split()
    if fields and (fields[0].startswith("TZ=") or fields[0].startswith("CRON_TZ=")):
        fields = fields[1:]
    if len(fields) != 5:
        return f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]"
    for text, (_, low, high, names) in zip(fields, _CRON_FIELDS):
        for expression in text.split(","):
            error = _cron_range_error(expression, low, high, names)
            if error:
                return error
    return None


def _cron_number(text: str, names: dict[str, int], expression: str) -> tuple[int | None, str | None]:
    if text.lower() in names:
        return names[text.lower()], None
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        return None, f"failed to parse int from {text}: strconv.Atoi: parsing {json.dumps(text)}: invalid syntax"
    number = int(text)
    if number < 0:
        return None, f"negative number ({number}) not allowed: {text}"
    return number, None


def _cron_range_error(expression: str, low: int, high: int, names: dict[str, int]) -> str | None:
    range_and_step = expression.split("/")
    low_and_high = range_and_step[0].split("-")
    single = len(low_and_high) == 1
    if low_and_high[0] in ("*", "?"):
        start, end = low, high
    else:
        start, error = _cron_number(low_and_high[0], names, expression)
        if error:
            return error
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end, error = _cron_number(low_and_high[1], names, expression)
            if error:
                return error
        else:
            return f"too many hyphens: {expression}"
    if len(range_and_step) == 2:
        step, error = _cron_number(range_and_step[1], names, expression)
        if error:
            return error
        if single and low_and_high[0] not in ("*", "?"):
            end = high  # "N/step" means N through the maximum
        if step <= 0:
            return f"step of range should be a positive number: {expression}"
    elif len(range_and_step) > 2:
        return f"too many slashes: {expression}"
    if start < low:
        return f"beginning of range ({start}) below minimum ({low}): {expression}"
    if end > high:
        return f"end of range ({end}) above maximum ({high}): {expression}"
    if start > end:
        return f"beginning of range ({start}) beyond end of range ({end}): {expression}"
    return None


def _validate_cronjob(causes: _Causes, obj: dict) -> None:
    name = _dict(obj.get("metadata")).get("name") or ""
    if len(name) > CRONJOB_NAME_MAX:
        causes.append(errors.invalid("metadata.name", name, max_len_error(CRONJOB_NAME_MAX)))
    spec = _dict(obj.get("spec"))
    schedule = spec.get("schedule")
    if not schedule:
        causes.append(errors.required("spec.schedule"))
    else:
        error = cron_schedule_error(str(schedule))
        if error:
            causes.append(errors.invalid("spec.schedule", schedule, error))
        if spec.get("timeZone") and ("TZ=" in str(schedule)):
            causes.append(errors.invalid("spec.schedule", schedule, "cannot use both timeZone field and TZ or CRON_TZ in schedule"))
    policy = spec.get("concurrencyPolicy")
    if not policy:
        causes.append(errors.required("spec.concurrencyPolicy"))
    elif policy not in ("Allow", "Forbid", "Replace"):
        causes.append(errors.not_supported("spec.concurrencyPolicy", policy, ["Allow", "Forbid", "Replace"]))
    for key in ("startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        _nonnegative(causes, spec.get(key), f"spec.{key}")
    job_template = _dict(spec.get("jobTemplate"))
    job_spec = _dict(job_template.get("spec"))
    validate_labels(causes, _dict(job_template.get("metadata")).get("labels"), "spec.jobTemplate.metadata.labels")
    if job_spec.get("manualSelector") is True:
        causes.append(errors.not_supported("spec.jobTemplate.spec.manualSelector", True, ["nil", "false"]))
    _validate_job_spec(causes, job_spec, "spec.jobTemplate.spec", False)


# -- services ------------------------------------------------------------------

_SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
_IPV4 = re.compile(r"^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$")


def _validate_service(causes: _Causes, obj: dict) -> None:
    spec = _dict(obj.get("spec"))
    service_type = spec.get("type")
    cluster_ip = spec.get("clusterIP") or ""
    headless = cluster_ip == "None"
    ports = _list(spec.get("ports"))
    if not ports and not headless and service_type != "ExternalName":
        causes.append(errors.required("spec.ports"))
    if service_type == "ExternalName":
        if cluster_ip or _list(spec.get("clusterIPs")):
            causes.append(errors.forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
        if _list(spec.get("ipFamilies")):
            causes.append(errors.forbidden("spec.ipFamilies", "may not be set for ExternalName services"))
        if spec.get("ipFamilyPolicy") is not None:
            causes.append(errors.forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services"))
        external_name = str(spec.get("externalName") or "")
        if not external_name:
            causes.append(errors.required("spec.externalName"))
        else:
            causes.invalid_each("spec.externalName", external_name, dns1123_subdomain_errors(external_name.rstrip(".")))
    port_names: set[str] = set()
    node_ports: set[tuple[Any, Any]] = set()
    for index, port in enumerate(ports):
        port = _dict(port)
        port_path = f"spec.ports[{index}]"
        name = port.get("name") or ""
        if len(ports) > 1 and not name:
            causes.append(errors.required(f"{port_path}.name"))
        elif name:
            causes.invalid_each(f"{port_path}.name", name, dns1123_label_errors(name))
            if name in port_names:
                causes.append(errors.duplicate(f"{port_path}.name", name))
            port_names.add(name)
        causes.invalid_each(f"{port_path}.port", port.get("port"), port_number_errors(port.get("port")))
        protocol = port.get("protocol")
        if not protocol:
            causes.append(errors.required(f"{port_path}.protocol"))
        elif protocol not in _PROTOCOLS:
            causes.append(errors.not_supported(f"{port_path}.protocol", protocol, _PROTOCOLS))
        if port.get("targetPort") is not None:
            _validate_port_num_or_name(causes, port.get("targetPort"), f"{port_path}.targetPort")
        node_port = port.get("nodePort")
        if node_port:
            if service_type == "ClusterIP":
                causes.append(errors.forbidden(f"{port_path}.nodePort", "may not be used when `type` is 'ClusterIP'"))
            elif service_type in ("NodePort", "LoadBalancer"):
                low, high = NODE_PORT_RANGE
                if not _is_int(node_port) or not low <= node_port <= high:
                    causes.append(errors.invalid(f"{port_path}.nodePort", node_port,
                                                 f"provided port is not in the valid range. The range of valid ports is {low}-{high}"))
                elif (node_port, protocol) in node_ports:
                    causes.append(errors.duplicate(f"{port_path}.nodePort", node_port))
                node_ports.add((node_port, protocol))
    if service_type and service_type not in _SERVICE_TYPES:
        causes.append(errors.not_supported("spec.type", service_type, _SERVICE_TYPES))
    affinity = spec.get("sessionAffinity")
    if affinity and affinity not in ("ClientIP", "None"):
        causes.append(errors.not_supported("spec.sessionAffinity", affinity, ["ClientIP", "None"]))
    validate_labels(causes, spec.get("selector"), "spec.selector")
    if service_type != "ExternalName":
        _validate_cluster_ips(causes, spec, service_type)
    external_policy = spec.get("externalTrafficPolicy")
    if external_policy:
        if service_type not in ("NodePort", "LoadBalancer"):
            causes.append(errors.invalid("spec.externalTrafficPolicy", external_policy, "may only be set when `type` is 'NodePort' or 'LoadBalancer'"))
        elif external_policy not in ("Cluster", "Local"):
            causes.append(errors.not_supported("spec.externalTrafficPolicy", external_policy, ["Cluster", "Local"]))
    internal_policy = spec.get("internalTrafficPolicy")
    if internal_policy and internal_policy not in ("Cluster", "Local"):
        causes.append(errors.not_supported("spec.internalTrafficPolicy", internal_policy, ["Cluster", "Local"]))


_IP_FAMILY_POLICIES = ["PreferDualStack", "RequireDualStack", "SingleStack"]


def _is_ipv6(text: str) -> bool:
    import ipaddress
    try:
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False


def _validate_cluster_ips(causes: _Causes, spec: dict, service_type: Any) -> None:
    """Upstream's ValidateServiceClusterIPsRelatedFields and the IP-family checks its
    allocator makes, for a single-stack IPv4 cluster."""
    cluster_ip = spec.get("clusterIP") or ""
    cluster_ips = [str(ip) for ip in _list(spec.get("clusterIPs"))]
    if cluster_ip:
        if not cluster_ips:
            causes.append(errors.required("spec.clusterIPs"))
        elif cluster_ips[0] != cluster_ip:
            causes.append(_invalid_rendered("spec.clusterIPs", _go_string_slice(cluster_ips), "first value must match `clusterIP`"))
    elif cluster_ips:
        causes.append(_invalid_rendered("spec.clusterIPs", _go_string_slice(cluster_ips),
                                        "must be empty when `clusterIP` is not specified"))
    policy = spec.get("ipFamilyPolicy")
    if policy is not None and policy not in _IP_FAMILY_POLICIES:
        causes.append(errors.not_supported("spec.ipFamilyPolicy", policy, _IP_FAMILY_POLICIES))
    families = _list(spec.get("ipFamilies"))
    for index, family in enumerate(families):
        if family not in ("IPv4", "IPv6"):
            causes.append(errors.not_supported(f"spec.ipFamilies[{index}]", family, ["IPv4", "IPv6"]))
        elif family in families[:index]:
            causes.append(errors.duplicate(f"spec.ipFamilies[{index}]", family))
    headless = cluster_ips[:1] == ["None"] or cluster_ip == "None"
    if headless:
        if service_type in ("NodePort", "LoadBalancer"):
            causes.append(errors.invalid("spec.clusterIPs[0]", "None", f"may not be set to 'None' for {service_type} services"))
        if len(cluster_ips) > 1:
            causes.append(_invalid_rendered("spec.clusterIPs", _go_string_slice(cluster_ips), "'None' must be the first and only value"))
        return
    for index, ip in enumerate(cluster_ips):
        if not _IPV4.match(ip) and not _is_ipv6(ip):
            causes.append(errors.invalid(f"spec.clusterIPs[{index}]", ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
    # One family only: this cluster's service CIDR is IPv4.
    if policy == "RequireDualStack":
        causes.append(errors.invalid("spec.ipFamilyPolicy", policy, "this cluster is not configured for dual-stack services"))
    if policy == "SingleStack" and len(cluster_ips) == 2:
        causes.append(errors.invalid("spec.ipFamilyPolicy", policy, "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified"))
    for index, family in enumerate(families):
        if family == "IPv6":
            causes.append(errors.invalid(f"spec.ipFamilies[{index}]", family, "not configured on this cluster"))


def _validate_service_update(causes: _Causes, new: dict, old: dict) -> None:
    new_spec, old_spec = _dict(new.get("spec")), _dict(old.get("spec"))
    old_ip, new_ip = old_spec.get("clusterIP") or "", new_spec.get("clusterIP") or ""
    # Changing to or from ExternalName releases/allocates the IP, so it is allowed there.
    if "ExternalName" in (old_spec.get("type"), new_spec.get("type")):
        return
    if old_ip and new_ip and old_ip != new_ip:
        new_ips = _list(new_spec.get("clusterIPs")) or [new_ip]
        causes.append(_invalid_rendered("spec.clusterIPs[0]", _go_string_slice(new_ips), "may not change once set"))


# -- config ------------------------------------------------------------------

def _validate_config_map(causes: _Causes, obj: dict) -> None:
    total = 0
    data, binary = _dict(obj.get("data")), _dict(obj.get("binaryData"))
    for key, value in data.items():
        causes.invalid_each(f"data[{key}]", key, config_key_errors(key))
        if key in binary:
            causes.append(errors.invalid(f"data[{key}]", key, "duplicate of key present in binaryData"))
        total += len(str(value).encode())
    for key, value in binary.items():
        causes.invalid_each(f"binaryData[{key}]", key, config_key_errors(key))
        total += len(_decoded(value) or b"")
    if total > MAX_SECRET_SIZE:
        causes.append(errors.too_long("", "", MAX_SECRET_SIZE))


def _decoded(value: Any) -> bytes | None:
    return base64bytes.decode(value)


_SECRET_REQUIRED_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


def _validate_secret(causes: _Causes, obj: dict) -> None:
    data = _dict(obj.get("data"))
    total = 0
    for key, value in data.items():
        causes.invalid_each(f"data[{key}]", key, config_key_errors(key))
        decoded = _decoded(value)
        if decoded is None:
            causes.append(errors.invalid(f"data[{key}]", "<secret contents redacted>", "must be base64 encoded"))
        total += len(decoded or b"")
    if total > MAX_SECRET_SIZE:
        causes.append(errors.too_long("data", "", MAX_SECRET_SIZE))
    secret_type = obj.get("type") or "Opaque"
    if secret_type == "kubernetes.io/service-account-token":
        if not _dict(_dict(obj.get("metadata")).get("annotations")).get("kubernetes.io/service-account.name"):
            causes.append(errors.required("metadata.annotations[kubernetes.io/service-account.name]"))
    elif secret_type == "kubernetes.io/basic-auth":
        if "username" not in data and "password" not in data:
            causes.append(errors.required("data[username]"))
            causes.append(errors.required("data[password]"))
    for key in _SECRET_REQUIRED_KEYS.get(secret_type, ()):
        if key not in data:
            causes.append(errors.required(f"data[{key}]"))
    if secret_type in ("kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson"):
        key = _SECRET_REQUIRED_KEYS[secret_type][0]
        if key in data:
            try:
                json.loads((_decoded(data[key]) or b"").decode())
            except ValueError as error:
                causes.append(errors.invalid(f"data[{key}]", "<secret contents redacted>", str(error)))
    if secret_type != "Opaque":
        causes.invalid_each("type", secret_type, qualified_name_errors(secret_type))


def _validate_immutable_data(causes: _Causes, new: dict, old: dict, data_keys: tuple[str, ...]) -> None:
    if old.get("immutable") is not True:
        return
    if new.get("immutable") is not True:
        causes.append(errors.forbidden("immutable", "field is immutable when `immutable` is set"))
    for key in data_keys:
        if _dict(new.get(key)) != _dict(old.get(key)):
            causes.append(errors.forbidden(key, "field is immutable when `immutable` is set"))


# -- storage, namespaces, misc -------------------------------------------------

_ACCESS_MODES = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]


def _validate_pvc_spec(causes: _Causes, spec: dict, path: str) -> None:
    modes = _list(spec.get("accessModes"))
    if not modes:
        causes.append(errors.required(f"{path}.accessModes", "at least 1 access mode is required"))
    for mode in modes:
        if mode not in _ACCESS_MODES:
            causes.append(errors.not_supported(f"{path}.accessModes", mode, _ACCESS_MODES))
    if spec.get("selector") is not None:
        validate_label_selector(causes, spec["selector"], f"{path}.selector")
    resources = _dict(spec.get("resources"))
    storage = _dict(resources.get("requests")).get("storage")
    if storage is None and not spec.get("dataSource") and not spec.get("dataSourceRef"):
        causes.append(errors.required(f"{path}.resources[storage]"))
    elif storage is not None:
        quantity = _validate_quantity(causes, storage, f"{path}.resources.requests[storage]")
        if quantity is not None and quantity <= 0:
            causes.append(errors.invalid(f"{path}.resources.requests[storage]", storage, _NOT_POSITIVE))
    volume_mode = spec.get("volumeMode")
    if volume_mode and volume_mode not in ("Block", "Filesystem"):
        causes.append(errors.not_supported(f"{path}.volumeMode", volume_mode, ["Block", "Filesystem"]))


def _validate_pvc(causes: _Causes, obj: dict) -> None:
    _validate_pvc_spec(causes, _dict(obj.get("spec")), "spec")


def _validate_pvc_update(causes: _Causes, new: dict, old: dict) -> None:
    new_spec, old_spec = copy.deepcopy(_dict(new.get("spec"))), _dict(old.get("spec"))
    # Storage may grow (expansion), volumeName may be bound once and the attributes class
    # may change; everything else is fixed after creation.
    new_storage = _dict(_dict(new_spec.get("resources")).get("requests")).get("storage")
    old_storage = _dict(_dict(old_spec.get("resources")).get("requests")).get("storage")
    if new_storage is not None and old_storage is not None:
        try:
            if parse_quantity(new_storage) < parse_quantity(old_storage):
                causes.append(errors.forbidden("spec.resources.requests.storage", "field can not be less than status.capacity"))
        except ValueError:
            pass
        new_spec.setdefault("resources", {}).setdefault("requests", {})["storage"] = old_storage
    if not old_spec.get("volumeName"):
        new_spec.pop("volumeName", None)
        old_spec = {k: v for k, v in old_spec.items() if k != "volumeName"}
    # upstream validateStorageClassUpgradeFromNil (retroactive default StorageClass): a claim
    # created with no class may be given one later (the beta annotation's, if it has one).
    old_annotation = _dict(_dict(old.get("metadata")).get("annotations")).get("volume.beta.kubernetes.io/storage-class")
    if old_spec.get("storageClassName") is None and new_spec.get("storageClassName") is not None \
            and old_annotation in (None, new_spec["storageClassName"]):
        new_spec.pop("storageClassName")
        old_spec = {k: v for k, v in old_spec.items() if k != "storageClassName"}
    for key in ("volumeAttributesClassName",):
        new_spec.pop(key, None)
        old_spec = {k: v for k, v in old_spec.items() if k != key}
    if new_spec != old_spec:
        causes.append(errors.forbidden("spec", "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims\n"
                                       + _spec_diff(old_spec, new_spec).replace("core.PodSpec", "core.PersistentVolumeClaimSpec")))


def _validate_pv(causes: _Causes, obj: dict) -> None:
    spec = _dict(obj.get("spec"))
    if not _list(spec.get("accessModes")):
        causes.append(errors.required("spec.accessModes"))
    capacity = _dict(spec.get("capacity"))
    if "storage" not in capacity:
        causes.append(errors.required("spec.capacity"))
    else:
        _validate_quantity(causes, capacity["storage"], "spec.capacity[storage]")
    sources = [key for key in _VOLUME_SOURCES + ("local",) if spec.get(key) is not None]
    if not sources:
        causes.append(errors.required("spec", "must specify a volume type"))
    policy = spec.get("persistentVolumeReclaimPolicy")
    if policy and policy not in ("Delete", "Recycle", "Retain"):
        causes.append(errors.not_supported("spec.persistentVolumeReclaimPolicy", policy, ["Delete", "Recycle", "Retain"]))


def _validate_namespace(causes: _Causes, obj: dict) -> None:
    for finalizer in _list(_dict(obj.get("spec")).get("finalizers")):
        causes.invalid_each("spec.finalizers", finalizer, qualified_name_errors(str(finalizer)))
        if finalizer != "kubernetes" and "/" not in str(finalizer):
            causes.append(errors.invalid("spec.finalizers", finalizer, "name is neither a standard finalizer name nor is it fully qualified"))


def _validate_storage_class(causes: _Causes, obj: dict) -> None:
    provisioner = obj.get("provisioner") or ""
    if not provisioner:
        causes.append(errors.required("provisioner"))
    else:
        causes.invalid_each("provisioner", provisioner, qualified_name_errors(provisioner.lower()))
    policy = obj.get("reclaimPolicy")
    if policy and policy not in ("Delete", "Retain"):
        causes.append(errors.not_supported("reclaimPolicy", policy, ["Delete", "Retain"]))
    mode = obj.get("volumeBindingMode")
    if mode and mode not in ("Immediate", "WaitForFirstConsumer"):
        causes.append(errors.not_supported("volumeBindingMode", mode, ["Immediate", "WaitForFirstConsumer"]))


def _validate_storage_class_update(causes: _Causes, new: dict, old: dict) -> None:
    for key in ("parameters", "provisioner", "reclaimPolicy", "volumeBindingMode"):
        if new.get(key) != old.get(key):
            causes.append(errors.forbidden(key, f"updates to {key} are forbidden."))


# -- registry ----------------------------------------------------------------

_CREATE_RULES: dict[tuple[str, str], Callable[[_Causes, dict], None]] = {
    ("", "Pod"): lambda causes, obj: validate_pod_spec(causes, obj.get("spec")),
    ("", "Service"): _validate_service,
    ("", "ConfigMap"): _validate_config_map,
    ("", "Secret"): _validate_secret,
    ("", "Namespace"): _validate_namespace,
    ("", "PersistentVolumeClaim"): _validate_pvc,
    ("", "PersistentVolume"): _validate_pv,
    ("", "ReplicationController"): _validate_replication_controller,
    ("apps", "Deployment"): _validate_deployment,
    ("apps", "ReplicaSet"): _validate_replicaset,
    ("apps", "DaemonSet"): _validate_daemonset,
    ("apps", "StatefulSet"): _validate_statefulset,
    ("batch", "Job"): _validate_job,
    ("batch", "CronJob"): _validate_cronjob,
    ("storage.k8s.io", "StorageClass"): _validate_storage_class,
}


def _immutable(causes: _Causes, new: Any, old: Any, path: str, render: Callable[[Any], str] | None = None) -> None:
    if new != old:
        if render is not None:
            causes.append(_invalid_rendered(path, render(new), _IMMUTABLE))
        else:
            causes.append(errors.invalid(path, new, _IMMUTABLE))


_STATEFULSET_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "revisionHistoryLimit",
                        "persistentVolumeClaimRetentionPolicy", "minReadySeconds")


def _validate_update_rules(resource: Resource, causes: _Causes, new: dict, old: dict) -> None:
    key = (resource.group, resource.kind)
    new_spec, old_spec = _dict(new.get("spec")), _dict(old.get("spec"))
    if key == ("", "Pod"):
        _validate_pod_update(causes, new, old)
    elif key in (("apps", "Deployment"), ("apps", "ReplicaSet"), ("apps", "DaemonSet")):
        _immutable(causes, new_spec.get("selector"), old_spec.get("selector"), "spec.selector", go_label_selector)
    elif key == ("apps", "StatefulSet"):
        _immutable(causes, new_spec.get("selector"), old_spec.get("selector"), "spec.selector", go_label_selector)
        fixed_new = {k: v for k, v in new_spec.items() if k not in _STATEFULSET_MUTABLE}
        fixed_old = {k: v for k, v in old_spec.items() if k not in _STATEFULSET_MUTABLE}
        if fixed_new != fixed_old:
            causes.append(errors.forbidden("spec", "updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                                           "'template', 'updateStrategy', 'revisionHistoryLimit', "
                                           "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"))
    elif key == ("batch", "Job"):
        _immutable(causes, new_spec.get("selector"), old_spec.get("selector"), "spec.selector", go_label_selector)
        _immutable(causes, new_spec.get("template"), old_spec.get("template"), "spec.template",
                   lambda t: json.dumps(t, sort_keys=True, separators=(",", ":")))
        _immutable(causes, new_spec.get("completionMode"), old_spec.get("completionMode"), "spec.completionMode")
        if new_spec.get("completionMode") != "Indexed":
            _immutable(causes, new_spec.get("completions"), old_spec.get("completions"), "spec.completions")
        _immutable(causes, new_spec.get("podFailurePolicy"), old_spec.get("podFailurePolicy"), "spec.podFailurePolicy")
    elif key == ("", "Service"):
        _validate_service_update(causes, new, old)
    elif key == ("", "ConfigMap"):
        _validate_immutable_data(causes, new, old, ("data", "binaryData"))
    elif key == ("", "Secret"):
        _immutable(causes, new.get("type") or "Opaque", old.get("type") or "Opaque", "type")
        _validate_immutable_data(causes, new, old, ("data",))
    elif key == ("", "PersistentVolumeClaim"):
        _validate_pvc_update(causes, new, old)
    elif key == ("storage.k8s.io", "StorageClass"):
        _validate_storage_class_update(causes, new, old)
    elif key in (("rbac.authorization.k8s.io", "RoleBinding"), ("rbac.authorization.k8s.io", "ClusterRoleBinding")):
        if new.get("roleRef") != old.get("roleRef"):
            causes.append(errors.invalid("roleRef", new.get("roleRef"), "cannot change roleRef"))


def _collect_create(resource: Resource, obj: dict) -> _Causes:
    causes = _Causes()
    name_rule = _NAME_RULES.get((resource.group, resource.kind), name_is_dns_subdomain)
    validate_object_meta(causes, obj.get("metadata"), resource.namespaced, name_rule)
    rule = _CREATE_RULES.get((resource.group, resource.kind))
    if rule is not None:
        rule(causes, obj)
    return causes


def _raise(resource: Resource, obj: dict, causes: _Causes) -> None:
    if causes:
        name = _dict(obj.get("metadata")).get("name") or ""
        raise errors.Invalid(resource.kind, name, list(causes), resource.group)


def validate_create(resource: Resource, obj: dict) -> None:
    """Raise errors.Invalid with every field error of `obj` (already defaulted)."""
    _raise(resource, obj, _collect_create(resource, obj))


def validate_update(resource: Resource, new: dict, old: dict) -> None:
    """Create rules on `new`, plus metadata and per-kind immutability against `old`."""
    causes = _Causes()
    validate_object_meta_update(causes, new.get("metadata"), old.get("metadata"))
    _validate_update_rules(resource, causes, new, old)
    causes.extend(_collect_create(resource, new))
    _raise(resource, new, causes)
