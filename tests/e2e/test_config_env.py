"""Chapter 4 of the book, environment half: variables from the pod spec, ConfigMaps and
Secrets in real containers (printenv through kubectl exec), upstream's precedence and
`$(VAR)` expansion, a missing key holding the container in CreateContainerConfigError until
it is added, and pulls from a private registry with image pull secrets.

The book's `kiamol/ch03-sleep` is the project's `pyk8s/busybox:1.35` running `sleep`; pods
get a 1 s grace period so each rollout's old pod (sleep as PID 1 ignores SIGTERM) is gone
before the next `kubectl exec deploy/sleep`.
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import json
import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from conftest import Kubectl, eventually
from pyk8s.cluster.localcluster import free_port

BUSYBOX = "pyk8s/busybox:1.35"
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/containerd").exists(),
                                reason="needs root and containerd (scripts/install-node-deps.sh)")


@pytest.fixture(scope="module")
def kubectl(cluster, tmp_path_factory) -> Kubectl:
    return Kubectl(cluster, tmp_path_factory.mktemp("kube-cache"))


def sleep_deployment(container_extra: str = "") -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: sleep
spec:
  selector:
    matchLabels:
      app: sleep
  template:
    metadata:
      labels:
        app: sleep
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: sleep
          image: {BUSYBOX}
          command: ["sleep", "3600"]
{container_extra}"""


def roll_out(kubectl: Kubectl, manifest: str) -> str:
    """Apply the sleep Deployment and wait until its one pod of the new template runs alone."""
    output = kubectl("apply", "-f", "-", input=manifest)
    kubectl("rollout", "status", "deployment/sleep", "--timeout=90s", timeout=100)

    def single_running_pod():
        pods = json.loads(kubectl("get", "pods", "-l", "app=sleep", "-o", "json"))["items"]
        return len(pods) == 1 and pods[0]["status"].get("phase") == "Running" and pods[0]["metadata"]["name"]
    eventually(single_running_pod, 60, what="one running sleep pod")
    return output


def test_book_environment_variables_from_the_spec_and_configmaps(kubectl):
    # sleep/sleep.yaml: HOSTNAME is the pod name, KIAMOL_CHAPTER does not exist.
    assert roll_out(kubectl, sleep_deployment()).strip() == "deployment.apps/sleep created"
    printed = kubectl.run("exec", "deploy/sleep", "--", "printenv", "HOSTNAME", "KIAMOL_CHAPTER", check=False)
    pod_name = kubectl("get", "pods", "-l", "app=sleep", "-o", "jsonpath={.items[0].metadata.name}")
    assert printed.returncode == 1 and printed.stdout == f"{pod_name}\n"
    assert "command terminated with exit code 1" in printed.stderr

    # Listing 4.1: an env value in the pod spec.
    with_env = """          env:
            - name: KIAMOL_CHAPTER
              value: "04"
"""
    assert roll_out(kubectl, sleep_deployment(with_env)).strip() == "deployment.apps/sleep configured"
    pod_name = kubectl("get", "pods", "-l", "app=sleep", "-o", "jsonpath={.items[0].metadata.name}")
    assert kubectl("exec", "deploy/sleep", "--", "printenv", "HOSTNAME", "KIAMOL_CHAPTER") == f"{pod_name}\n04\n"

    # Listing 4.2: a ConfigMap from a literal, one key renamed into a variable.
    assert kubectl("create", "configmap", "sleep-config-literal", "--from-literal=kiamol.section=4.1") \
        == "configmap/sleep-config-literal created\n"
    table = kubectl("get", "cm", "sleep-config-literal").splitlines()
    assert re.split(r"\s{2,}", table[0]) == ["NAME", "DATA", "AGE"]
    assert re.split(r"\s{2,}", table[1])[:2] == ["sleep-config-literal", "1"]
    described = kubectl("describe", "cm", "sleep-config-literal")
    assert re.search(r"Name:\s+sleep-config-literal\nNamespace:\s+default\nLabels:\s+<none>\nAnnotations:\s+<none>\n",
                     described), described
    assert "\nData\n====\nkiamol.section:\n----\n4.1\n" in described, described
    assert re.search(r"Events:\s+<none>", described), described
    configmap_env = with_env + """            - name: KIAMOL_SECTION
              valueFrom:
                configMapKeyRef:
                  name: sleep-config-literal
                  key: kiamol.section
"""
    roll_out(kubectl, sleep_deployment(configmap_env))
    assert sorted(kubectl("exec", "deploy/sleep", "--", "sh", "-c", 'printenv | grep "KIAMOL"').split()) == \
        ["KIAMOL_CHAPTER=04", "KIAMOL_SECTION=4.1"]

    # Listings 4.3 and 4.4: an env file as a ConfigMap, loaded with envFrom; env wins.
    env_file = Path(kubectl.cache_dir) / "ch04.env"
    env_file.write_text("# environment files use a new line for each variable\nKIAMOL_CHAPTER=ch04\n"
                        "KIAMOL_SECTION=ch04-4.1\nKIAMOL_EXERCISE=try it now\n")
    assert kubectl("create", "configmap", "sleep-config-env-file", f"--from-env-file={env_file}") \
        == "configmap/sleep-config-env-file created\n"
    assert re.split(r"\s{2,}", kubectl("get", "cm", "sleep-config-env-file").splitlines()[1])[:2] == \
        ["sleep-config-env-file", "3"]
    roll_out(kubectl, sleep_deployment(configmap_env + """          envFrom:
            - configMapRef:
                name: sleep-config-env-file
"""))
    assert sorted(kubectl("exec", "deploy/sleep", "--", "sh", "-c", 'printenv | grep "KIAMOL"').splitlines()) == \
        ["KIAMOL_CHAPTER=04", "KIAMOL_EXERCISE=try it now", "KIAMOL_SECTION=4.1"]


def test_book_secret_as_environment_and_string_data(kubectl):
    assert kubectl("create", "secret", "generic", "sleep-secret-literal", "--from-literal=secret=shh...") \
        == "secret/sleep-secret-literal created\n"
    described = kubectl("describe", "secret", "sleep-secret-literal")
    assert re.search(r"Type:\s+Opaque\n\nData\n====\nsecret:\s+6 bytes\n", described), described
    assert "shh..." not in described
    encoded = kubectl("get", "secret", "sleep-secret-literal", "-o", "jsonpath={.data.secret}")
    assert encoded == "c2hoLi4u" and base64.b64decode(encoded) == b"shh..."

    # Listing 4.11: the Secret's plain value in the container.
    roll_out(kubectl, sleep_deployment("""          env:
            - name: KIAMOL_SECRET
              valueFrom:
                secretKeyRef:
                  name: sleep-secret-literal
                  key: secret
"""))
    assert kubectl("exec", "deploy/sleep", "--", "printenv", "KIAMOL_SECRET") == "shh...\n"

    # Listing 4.12: stringData is stored base64-encoded as data.
    manifest = """apiVersion: v1
kind: Secret
metadata:
  name: todo-db-secret-test
type: Opaque
stringData:
  POSTGRES_PASSWORD: "kiamol-2*2*"
"""
    assert kubectl("apply", "-f", "-", input=manifest) == "secret/todo-db-secret-test created\n"
    assert kubectl("get", "secret", "todo-db-secret-test", "-o", "jsonpath={.data.POSTGRES_PASSWORD}") == \
        base64.b64encode(b"kiamol-2*2*").decode()
    annotations = json.loads(kubectl("get", "secret", "todo-db-secret-test", "-o", "jsonpath={.metadata.annotations}"))
    applied = json.loads(annotations["kubectl.kubernetes.io/last-applied-configuration"])
    assert applied["stringData"] == {"POSTGRES_PASSWORD": "kiamol-2*2*"}
    kubectl("delete", "deployment", "sleep", "--wait=false")


def pod_manifest(name: str, container_extra: str, args: str = '["sleep", "3600"]', spec_extra: str = "") -> str:
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels:
    app: {name}
  annotations:
    team: blue
spec:
  terminationGracePeriodSeconds: 1
{spec_extra}  containers:
    - name: main
      image: {BUSYBOX}
      command: {args}
{container_extra}"""


def test_field_resource_and_expanded_variables(kubectl):
    container = """      resources:
        limits:
          memory: 64Mi
          cpu: 250m
      envFrom:
        - prefix: CFG_
          configMapRef:
            name: sleep-config-env-file
        - secretRef:
            name: sleep-secret-literal
      env:
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        - name: POD_NS
          valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
        - name: APP
          valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}
        - name: TEAM
          valueFrom: {fieldRef: {fieldPath: "metadata.annotations['team']"}}
        - name: NODE
          valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
        - name: POD_IP
          valueFrom: {fieldRef: {fieldPath: status.podIP}}
        - name: MEMORY_MI
          valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}
        - name: CPU_CORES
          valueFrom: {resourceFieldRef: {resource: limits.cpu}}
        - name: GREETING
          value: "$(POD_NAME) in $(POD_NS), secret $(secret), chapter $(CFG_KIAMOL_CHAPTER), $$(POD_NAME) $(NOPE)"
"""
    kubectl("apply", "-f", "-", input=pod_manifest("env-sources", container,
                                                   args='["sh", "-c", "echo $(POD_NAME) $(CFG_KIAMOL_CHAPTER) $$0 $(NOPE); sleep 3600"]'))
    kubectl("wait", "--for=condition=Ready", "pod/env-sources", "--timeout=60s", timeout=70)
    env = dict(line.split("=", 1) for line in kubectl("exec", "env-sources", "--", "printenv").splitlines() if "=" in line)
    pod = json.loads(kubectl("get", "pod", "env-sources", "-o", "json"))
    assert env["POD_NAME"] == "env-sources" and env["POD_NS"] == "default"
    assert env["APP"] == "env-sources" and env["TEAM"] == "blue"
    assert env["NODE"] == pod["spec"]["nodeName"] and env["POD_IP"] == pod["status"]["podIP"]
    assert env["MEMORY_MI"] == "64" and env["CPU_CORES"] == "1"
    assert env["CFG_KIAMOL_CHAPTER"] == "ch04" and env["secret"] == "shh..."
    expected = "env-sources in default, secret shh..., chapter ch04, $(POD_NAME) $(NOPE)"
    assert env["GREETING"] == expected
    # command and args are expanded before the shell sees them: $$0 is the shell's $0, and
    # the unknown $(NOPE) reaches sh as a command substitution.
    logs = kubectl("logs", "env-sources")
    assert "env-sources ch04 sh\n" in logs and "NOPE: not found" in logs, logs
    kubectl("delete", "pod", "env-sources", "--wait=false")


def test_missing_configmap_key_holds_the_container_until_it_is_added(kubectl):
    container = """      env:
        - name: LATE
          valueFrom:
            configMapKeyRef:
              name: late-config
              key: late.key
"""
    kubectl("apply", "-f", "-", input=pod_manifest("late-config-pod", container))

    def waiting_reason():
        pod = json.loads(kubectl("get", "pod", "late-config-pod", "-o", "json"))
        statuses = pod["status"].get("containerStatuses") or [{}]
        waiting = statuses[0].get("state", {}).get("waiting") or {}
        return waiting if waiting.get("reason") == "CreateContainerConfigError" else None

    waiting = eventually(waiting_reason, 60, what="CreateContainerConfigError")
    assert waiting["message"] == 'configmap "late-config" not found'
    row = re.split(r"\s{2,}", kubectl("get", "pod", "late-config-pod").splitlines()[1])
    assert row[1:3] == ["0/1", "CreateContainerConfigError"]

    kubectl("create", "configmap", "late-config", "--from-literal=other=1")
    eventually(lambda: (waiting_reason() or {}).get("message") == "couldn't find key late.key in ConfigMap default/late-config",
               30, what="missing key message")
    events = kubectl("get", "events", "--field-selector", "involvedObject.name=late-config-pod")
    assert "Error: couldn't find key late.key in ConfigMap default/late-config" in events

    kubectl("patch", "configmap", "late-config", "-p", '{"data":{"late.key":"arrived"}}')
    kubectl("wait", "--for=condition=Ready", "pod/late-config-pod", "--timeout=30s", timeout=40)
    assert kubectl("exec", "late-config-pod", "--", "printenv", "LATE") == "arrived\n"
    kubectl("delete", "pod", "late-config-pod", "--wait=false")


# ---- private registry ------------------------------------------------------------------------

REGISTRY_BINARY = shutil.which("docker-registry")


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash for the registry's htpasswd file, from the system's libcrypt (libxcrypt
    does bcrypt), so the test needs neither apache2-utils nor a Python bcrypt package."""
    library = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
    library.crypt_gensalt.restype = ctypes.c_char_p
    library.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    library.crypt.restype = ctypes.c_char_p
    library.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    salt = library.crypt_gensalt(b"$2y$", 5, None, 0)
    return library.crypt(password.encode(), salt).decode()


@pytest.fixture(scope="module")
def private_registry(tmp_path_factory):
    """docker-registry with htpasswd (bcrypt) auth on 127.0.0.1:<free port> of the test's
    network namespace, holding one image: yields (host, user, password, image)."""
    if REGISTRY_BINARY is None:
        pytest.skip("needs Debian's docker-registry (scripts/install-node-deps.sh)")
    from test_registry_mirror import push_oci_archive, _registry_answers  # noqa: F401 - same helpers
    from pyk8s.kubelet.images import BUSYBOX_IMAGE, build_images

    work = tmp_path_factory.mktemp("private-registry")
    user, password = "puller", "s3cret-pass"
    (work / "htpasswd").write_text(f"{user}:{bcrypt_hash(password)}\n")
    port = free_port()
    (work / "config.yml").write_text(f"""version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {work / 'storage'}
http:
  addr: 127.0.0.1:{port}
auth:
  htpasswd:
    realm: pyk8s-test
    path: {work / 'htpasswd'}
""")
    log = open(work / "registry.log", "ab")
    process = subprocess.Popen([REGISTRY_BINARY, "serve", str(work / "config.yml")], stdout=log,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    url = f"http://127.0.0.1:{port}"
    # Credentials sent with the first request: answered 401 first, an upload would be cut off
    # mid-body when the registry closes the connection (a broken pipe, seen once in CI-like runs).
    passwords = urllib.request.HTTPPasswordMgrWithPriorAuth()
    passwords.add_password(None, url, user, password, is_authenticated=True)
    try:
        def answers_with_401():
            try:
                urllib.request.urlopen(f"{url}/v2/", timeout=1)
            except urllib.error.HTTPError as error:
                return error.code == 401
            except OSError:
                return process.poll() is not None
            return False
        eventually(answers_with_401, 15, what="registry asking for credentials")
        assert process.poll() is None, (work / "registry.log").read_text()
        archive = build_images(work / "images")[BUSYBOX_IMAGE]
        previous = urllib.request._opener  # type: ignore[attr-defined]
        urllib.request.install_opener(urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(passwords)))
        try:
            push_oci_archive(url, archive, "private/busybox", "1")
        finally:
            urllib.request.install_opener(previous)
        yield f"127.0.0.1:{port}", user, password, f"127.0.0.1:{port}/private/busybox:1"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _waiting(kubectl: Kubectl, name: str, namespace: str) -> dict:
    pod = json.loads(kubectl("get", "pod", name, "-n", namespace, "-o", "json"))
    statuses = pod["status"].get("containerStatuses") or [{}]
    return statuses[0].get("state", {}).get("waiting") or {}


def test_private_registry_needs_the_pull_secret(kubectl, private_registry):
    host, user, password, image = private_registry
    namespace = "private-pulls"
    kubectl("create", "namespace", namespace)
    spec = f"""apiVersion: v1
kind: Pod
metadata:
  name: NAME
  namespace: {namespace}
spec:
  terminationGracePeriodSeconds: 1
  SECRETS
  containers:
    - name: main
      image: {image}
      imagePullPolicy: Always
      command: ["sleep", "3600"]
"""
    kubectl("apply", "-f", "-", input=spec.replace("NAME", "no-secret").replace("SECRETS", ""))
    reasons = []

    def pull_failed():
        waiting = _waiting(kubectl, "no-secret", namespace)
        reasons.append(waiting.get("reason"))
        return waiting.get("reason") == "ErrImagePull" and waiting
    waiting = eventually(pull_failed, 90, what="ErrImagePull without credentials",
                         context=lambda: f"{sorted(set(map(str, reasons)))}\n" +
                         kubectl("describe", "pod", "no-secret", "-n", namespace))
    assert "401 Unauthorized" in waiting["message"], waiting

    assert kubectl("create", "secret", "docker-registry", "regcred", "-n", namespace, f"--docker-server={host}",
                   f"--docker-username={user}", f"--docker-password={password}") == "secret/regcred created\n"
    assert kubectl("get", "secret", "regcred", "-n", namespace, "-o", "jsonpath={.type}") == \
        "kubernetes.io/dockerconfigjson"
    kubectl("apply", "-f", "-", input=spec.replace("NAME", "with-secret")
            .replace("SECRETS", "imagePullSecrets:\n    - name: regcred"))
    kubectl("wait", "--for=condition=Ready", "pod/with-secret", "-n", namespace, "--timeout=60s", timeout=70)

    # The namespace's default ServiceAccount may carry the pull secret instead.
    kubectl("patch", "serviceaccount", "default", "-n", namespace, "-p", '{"imagePullSecrets":[{"name":"regcred"}]}')
    kubectl("apply", "-f", "-", input=spec.replace("NAME", "via-account").replace("SECRETS", ""))
    kubectl("wait", "--for=condition=Ready", "pod/via-account", "-n", namespace, "--timeout=60s", timeout=70)
    kubectl("delete", "namespace", namespace, "--wait=false")
