"""Running a pyk8s cluster on this machine: everything around the components themselves.

- `server`     the control-plane process: ServerConfig and run_server(), which starts storage
               and the API server (later controllers, scheduler, agent) in order;
- `pki`        the cluster CA and the serving / client certificates it signs;
- `kubeconfig` the admin kubeconfig, merged into and out of the user's ~/.kube/config;
- `daemon`     `pyk8s server` in the background: start detached, pid/state files in the data
               dir, readiness via GET /readyz, stop;
- `netns`      named network namespaces for isolated clusters (and the test harness).

Data flow: the CLI builds a ServerConfig → `daemon` starts `pyk8s server` with it → the
server calls `ensure_pki` and, once listening, `write_kubeconfig` → `daemon` probes /readyz
with that kubeconfig's admin certificate → the CLI merges the kubeconfig for the user.
"""
