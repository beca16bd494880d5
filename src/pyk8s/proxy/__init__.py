"""The service proxy (upstream's kube-proxy in iptables mode): makes ClusterIP, NodePort,
LoadBalancer and external IPs of Services reach their endpoints from this node.

It knows the cluster only through informers on Services and discovery.k8s.io/v1
EndpointSlices (pyk8s.client). Data flows one way:

    informers ──(dirty Service keys)──> ServiceProxy.sync (proxier.py)
        ──> rules.render: Services + slices → iptables-restore text (pure, rules.py)
        ──> iptables-restore --noflush: one atomic update per sync (iptables.py)
        ──> conntrack -D for UDP flows to endpoints that went away

Everything acts on the network namespace the agent runs in. `python -m pyk8s.proxy.cleanup`
removes every rule it made.
"""

from pyk8s.proxy.proxier import ServiceProxy

__all__ = ["ServiceProxy"]
