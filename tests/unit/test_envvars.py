"""A container's environment (kubelet/envvars.py): upstream's precedence, $(VAR) expansion,
ConfigMap / Secret references and their error messages, downward API fields, resources."""

from __future__ import annotations

import pytest

from pyk8s.kubelet.envvars import (CONFIG_MAP, SECRET, EnvConfigError, expand, expand_command, make_environment,
                                   object_data, referenced_objects, resource_field_value)


def pod(**spec) -> dict:
    return {"metadata": {"name": "web-1", "namespace": "ns1", "uid": "u-1", "labels": {"app": "web"},
                         "annotations": {"team": "blue"}},
            "spec": {"nodeName": "node-a", "serviceAccountName": "robot", **spec}}


def env_of(container: dict, objects=None, service_env=None, allocatable=None, warnings=None, the_pod=None):
    return dict(make_environment(the_pod or pod(containers=[container]), container, objects=objects or {},
                                 service_env=service_env or {}, pod_ips=["10.42.0.7"], host_ips=["192.0.2.1"],
                                 node_allocatable=allocatable or {"cpu": "2", "memory": "4Gi"},
                                 warn=None if warnings is None else lambda reason, message: warnings.append((reason, message))))


# ---- expansion ----------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("$(A)", "a"),
    ("x$(A)y$(B)z", "xaybz"),
    ("$(MISSING)", "$(MISSING)"),
    ("$$(A)", "$(A)"),          # escaped: no expansion
    ("$$$(A)", "$a"),
    ("$$", "$"),
    ("$", "$"),
    ("a$", "a$"),
    ("$A", "$A"),               # only $(...) references
    ("$(A", "$(A"),             # never closed
    ("$()", "$()"),
    ("$(A)$(A)", "aa"),
    ("(A)", "(A)"),
    ("no refs", "no refs"),
])
def test_expansion_follows_upstream_rules(text, expected):
    assert expand(text, {"A": "a", "B": "b"}) == expected


def test_expansion_reads_mappings_in_order():
    assert expand("$(X)", {"X": "first"}, {"X": "second", "Y": "y"}) == "first"
    assert expand("$(Y)", {"X": "first"}, {"X": "second", "Y": "y"}) == "y"


# ---- precedence -------------------------------------------------------------------------------

def test_explicit_env_wins_over_env_from_whatever_the_order():
    container = {"name": "c", "envFrom": [{"configMapRef": {"name": "file"}}],
                 "env": [{"name": "KIAMOL_CHAPTER", "value": "04"},
                         {"name": "KIAMOL_SECTION", "valueFrom": {"configMapKeyRef": {"name": "literal", "key": "kiamol.section"}}}]}
    objects = {(CONFIG_MAP, "file"): {"KIAMOL_CHAPTER": "ch04", "KIAMOL_SECTION": "ch04-4.1", "KIAMOL_EXERCISE": "try it now"},
               (CONFIG_MAP, "literal"): {"kiamol.section": "4.1"}}
    env = env_of(container, objects)
    assert env["KIAMOL_CHAPTER"] == "04"
    assert env["KIAMOL_SECTION"] == "4.1"
    assert env["KIAMOL_EXERCISE"] == "try it now"


def test_later_env_from_and_later_env_entries_win():
    container = {"name": "c", "envFrom": [{"configMapRef": {"name": "one"}}, {"secretRef": {"name": "two"}}],
                 "env": [{"name": "X", "value": "first"}, {"name": "X", "value": "second"}]}
    objects = {(CONFIG_MAP, "one"): {"K": "from-cm", "ONLY_CM": "cm"}, (SECRET, "two"): {"K": "from-secret"}}
    env = env_of(container, objects)
    assert env["K"] == "from-secret" and env["ONLY_CM"] == "cm" and env["X"] == "second"


def test_prefix_and_service_variables():
    container = {"name": "c", "envFrom": [{"prefix": "CFG_", "configMapRef": {"name": "cm"}}],
                 "env": [{"name": "API_HOST", "value": "pre-set"}]}
    env = make_environment(pod(), container, objects={(CONFIG_MAP, "cm"): {"lives": "3"}},
                           service_env={"API_HOST": "10.43.0.5", "KUBERNETES_SERVICE_HOST": "10.43.0.1"},
                           pod_ips=[], host_ips=[])
    assert dict(env) == {"CFG_lives": "3", "API_HOST": "pre-set", "KUBERNETES_SERVICE_HOST": "10.43.0.1"}
    assert [k for k, _ in env].count("API_HOST") == 1


def test_expansion_sees_env_from_earlier_entries_and_services_but_not_later_entries():
    container = {"name": "c", "envFrom": [{"configMapRef": {"name": "cm"}}],
                 "env": [{"name": "A", "value": "$(FROM_CM)-$(SVC)-$(B)"}, {"name": "B", "value": "b"},
                         {"name": "C", "value": "$(A)/$(B)/$$(B)"},
                         {"name": "D", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "RAW"}}}]}
    objects = {(CONFIG_MAP, "cm"): {"FROM_CM": "cm", "RAW": "$(B)"}}
    env = env_of(container, objects, service_env={"SVC": "svc"})
    assert env["A"] == "cm-svc-$(B)"
    assert env["C"] == "cm-svc-$(B)/b/$(B)"
    assert env["D"] == "$(B)"  # valueFrom values are never expanded
    assert env["RAW"] == "$(B)"


def test_command_and_args_expand_against_the_final_environment():
    container = {"name": "c", "command": ["sh", "-c", "echo $(GREETING) $$(HOME) $(NOPE)"], "args": ["$(WHO)"],
                 "env": [{"name": "GREETING", "value": "hello"}], "envFrom": [{"secretRef": {"name": "s"}}]}
    env = make_environment(pod(), container, objects={(SECRET, "s"): {"WHO": "world"}}, service_env={},
                           pod_ips=[], host_ips=[])
    assert expand_command(container, env) == (["sh", "-c", "echo hello $(HOME) $(NOPE)"], ["world"])


# ---- references ---------------------------------------------------------------------------------

def test_missing_objects_and_keys_raise_upstreams_messages():
    def error(container, objects=None):
        with pytest.raises(EnvConfigError) as caught:
            env_of(container, objects or {})
        return str(caught.value)

    ref = lambda kind, name, key: {"name": "C", "valueFrom": {kind: {"name": name, "key": key}}}  # noqa: E731
    assert error({"name": "c", "env": [ref("configMapKeyRef", "cfg", "k")]}) == 'configmap "cfg" not found'
    assert error({"name": "c", "env": [ref("secretKeyRef", "sec", "k")]}) == 'secret "sec" not found'
    assert error({"name": "c", "env": [ref("configMapKeyRef", "cfg", "k")]}, {(CONFIG_MAP, "cfg"): {"other": "1"}}) \
        == "couldn't find key k in ConfigMap ns1/cfg"
    assert error({"name": "c", "env": [ref("secretKeyRef", "sec", "k")]}, {(SECRET, "sec"): {}}) \
        == "couldn't find key k in Secret ns1/sec"
    assert error({"name": "c", "envFrom": [{"configMapRef": {"name": "gone"}}]}) == 'configmap "gone" not found'
    assert error({"name": "c", "envFrom": [{"secretRef": {"name": "gone"}}]}) == 'secret "gone" not found'


def test_optional_references_that_are_missing_set_nothing():
    container = {"name": "c", "envFrom": [{"configMapRef": {"name": "gone", "optional": True}},
                                          {"configMapRef": {"name": "cm"}}],
                 "env": [{"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "nope", "optional": True}}},
                         {"name": "S", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": True}}}]}
    env = env_of(container, {(CONFIG_MAP, "cm"): {"K": "from-env-from"}})
    assert env == {"K": "from-env-from"}


def test_env_from_keys_that_cannot_be_names_are_skipped_with_an_event():
    warnings: list = []
    env = env_of({"name": "c", "envFrom": [{"configMapRef": {"name": "cm"}}]},
                 {(CONFIG_MAP, "cm"): {"ok.key": "1", "1starts-with-digit": "2", "bad=key": "3", "": "4"}},
                 warnings=warnings)
    # Today's upstream (relaxed names) keeps dots, dashes and leading digits.
    assert env == {"ok.key": "1", "1starts-with-digit": "2"}
    assert warnings == [("InvalidEnvironmentVariableNames",
                         "Keys [, bad=key] from the EnvFrom configMap ns1/cm were skipped since they are "
                         "considered invalid environment variable names.")]


def test_referenced_objects_and_secret_data():
    container = {"envFrom": [{"configMapRef": {"name": "a"}}, {"secretRef": {"name": "b"}}],
                 "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "a", "key": "k"}}},
                         {"name": "Y", "valueFrom": {"secretKeyRef": {"name": "c", "key": "k"}}},
                         {"name": "Z", "value": "v"}]}
    assert referenced_objects(container) == [(CONFIG_MAP, "a"), (SECRET, "b"), (SECRET, "c")]
    assert object_data(SECRET, {"data": {"secret": "c2hoLi4u"}}) == {"secret": "shh..."}
    assert object_data(CONFIG_MAP, {"data": {"k": "v"}, "binaryData": {"b": "AA=="}}) == {"k": "v"}


# ---- downward API -------------------------------------------------------------------------------

def test_field_refs():
    fields = {"NAME": "metadata.name", "NS": "metadata.namespace", "UID": "metadata.uid",
              "APP": "metadata.labels['app']", "TEAM": "metadata.annotations['team']",
              "NOLABEL": "metadata.labels['nope']", "NODE": "spec.nodeName", "SA": "spec.serviceAccountName",
              "IP": "status.podIP", "IPS": "status.podIPs", "HOST": "status.hostIP", "HOSTS": "status.hostIPs"}
    container = {"name": "c", "env": [{"name": k, "valueFrom": {"fieldRef": {"fieldPath": v}}} for k, v in fields.items()]}
    assert env_of(container) == {"NAME": "web-1", "NS": "ns1", "UID": "u-1", "APP": "web", "TEAM": "blue",
                                 "NOLABEL": "", "NODE": "node-a", "SA": "robot", "IP": "10.42.0.7",
                                 "IPS": "10.42.0.7", "HOST": "192.0.2.1", "HOSTS": "192.0.2.1"}


@pytest.mark.parametrize("resource, divisor, resources, expected", [
    ("limits.cpu", None, {"limits": {"cpu": "250m"}}, "1"),          # rounded up to whole cores
    ("limits.cpu", "1m", {"limits": {"cpu": "250m"}}, "250"),
    ("requests.cpu", "100m", {"requests": {"cpu": "250m"}}, "3"),
    ("limits.memory", None, {"limits": {"memory": "64Mi"}}, str(64 * 1024 * 1024)),
    ("limits.memory", "1Mi", {"limits": {"memory": "64Mi"}}, "64"),
    ("limits.memory", "1M", {"limits": {"memory": "64Mi"}}, "68"),   # 67.1 MB rounded up
    ("requests.memory", "1Mi", {}, "0"),
    ("limits.cpu", None, {}, "2"),                                   # node allocatable
    ("limits.memory", "1Gi", {}, "4"),
    ("limits.cpu", "1m", {"limits": {"cpu": "0"}}, "2000"),
])
def test_resource_field_refs(resource, divisor, resources, expected):
    ref = {"resource": resource, **({"divisor": divisor} if divisor else {})}
    container = {"name": "c", "resources": resources}
    assert resource_field_value(pod(containers=[container]), container, ref, {"cpu": "2", "memory": "4Gi"}) == expected


def test_resource_field_ref_of_another_container():
    app = {"name": "app", "resources": {"limits": {"memory": "128Mi"}}}
    side = {"name": "side", "env": [{"name": "APP_MEM", "valueFrom": {"resourceFieldRef": {
        "containerName": "app", "resource": "limits.memory", "divisor": "1Mi"}}}]}
    assert env_of(side, the_pod=pod(containers=[app, side]))["APP_MEM"] == "128"
