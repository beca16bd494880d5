"""The `pyk8s` command line: argument parsing and the user-facing commands (server, up, down,
status, reset, kubectl). It holds no cluster logic of its own: it builds a ServerConfig and
calls `pyk8s.cluster` (process supervision, certificates, kubeconfig, network namespaces).
"""
