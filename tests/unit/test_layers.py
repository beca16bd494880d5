"""The layering of CONVENTIONS.md, checked on the source: imports point one way only, and
components never import each other (they meet only through the API)."""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "src" / "pyk8s"

# package -> the pyk8s packages (top-level names under pyk8s) it may import
ALLOWED = {
    "api": {"api"},
    "storage": {"storage", "api", "grpcclient"},  # CONVENTIONS: storage -> api (store errors are API errors)
    "grpcclient": {"grpcclient"},  # gRPC over our own HTTP/2: for containerd, probes and etcd
    "client": {"client", "api"},
    "apiserver": {"apiserver", "api", "storage", "httpstream", "spdy",
                  "cluster"},  # cluster.pki only, for its serving and kubelet-client TLS contexts
    "controllers": {"controllers", "client", "api"},
    "scheduler": {"scheduler", "client", "api"},
    "dns": {"dns", "client", "api"},
    "kubelet": {"kubelet", "client", "api", "httpstream", "spdy", "hostnet", "grpcclient",
                "proxy",  # the agent starts the service proxy beside the kubelet; cleanup removes its rules
                "provisioner",  # and the local-path provisioner
                "flannel"},  # and the pod network across nodes
    "proxy": {"proxy", "client", "api"},
    "flannel": {"flannel", "client", "api"},
    "provisioner": {"provisioner", "client", "api"},
    "cluster": {"cluster", "client", "api", "apiserver", "storage", "controllers", "scheduler", "kubelet",
                "hostnet", "dns"},
    "cli": {"cli", "cluster", "client", "api", "kubelet"},
}


def _pyk8s_imports(path: Path) -> set[tuple[str, int]]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "pyk8s" and len(parts) > 1:
                found.add((parts[1], node.lineno))
    return found


def test_packages_import_only_the_layers_below_them():
    violations = []
    for package, allowed in ALLOWED.items():
        for path in sorted((SOURCE / package).rglob("*.py")):
            # A package's __main__ is a process entry point: it may start the CLI.
            extra = {"cli"} if path.name == "__main__.py" else set()
            for imported, line in _pyk8s_imports(path):
                if imported not in allowed | extra:
                    violations.append(f"{path.relative_to(SOURCE)}:{line} imports pyk8s.{imported}")
    assert not violations, "\n".join(violations)


def test_every_package_is_covered_by_the_layer_rules():
    packages = {p.name for p in SOURCE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == set(ALLOWED)


def test_test_modules_have_unique_names():
    """pytest imports test modules by basename (rootdir-relative, no packages): two files
    with one name in tests/unit and tests/integration stop the whole run at collection."""
    tests = Path(__file__).resolve().parents[1]
    names = [path.name for path in tests.rglob("test_*.py")]
    assert sorted({name for name in names if names.count(name) > 1}) == []
