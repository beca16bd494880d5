"""Cluster DNS (what CoreDNS's `kubernetes` plugin does for upstream clusters).

- records.py: the zone `cluster.local` built from Services and EndpointSlices, and the
  pure answering function (query bytes -> reply bytes), per upstream's DNS specification;
- server.py: `DNSServer`, an async service with start()/stop() that knows the cluster only
  through informers on Services and discovery.k8s.io/v1 EndpointSlices, answers over UDP
  and TCP, forwards other names to upstream resolvers (cached; REFUSED when there are
  none), and serves /health, /ready and /metrics;
- __main__.py: the process in the DNS pods.
It runs as Deployment kube-system/coredns behind Service kube-dns (10.43.0.10), applied
by the server at every start (pyk8s.cluster.addons, which documents how the pods reach
the API today: a client certificate for system:serviceaccount:kube-system:coredns in a
Secret, until ServiceAccount tokens and in-cluster config exist), from an image the node
builds out of its own Python (pyk8s.kubelet.images.python).
"""
