"""The service proxy (upstream's kube-proxy, nftables mode by default or iptables mode:
`--proxy-mode` on `pyk8s server` / `pyk8s agent`): makes ClusterIP, NodePort, LoadBalancer and external IPs of
Services reach their endpoints from this node.

It knows the cluster only through informers on Services and discovery.k8s.io/v1
EndpointSlices (pyk8s.client). Data flows one way:

    informers ──(dirty Service keys)──> ServiceProxy.sync (proxier.py)
        ──> iptables mode: rules.render: Services + slices → iptables-restore text (pure,
            rules.py) ──> iptables-restore --noflush (iptables.py)
            nftables mode: nftables.render → one `nft -f` transaction (nftables.py)
            (either way one atomic update per sync)
        ──> conntrack -D for UDP flows to endpoints that went away

Everything acts on the network namespace the agent runs in. `python -m pyk8s.proxy.cleanup`
removes every rule it made, in both modes.
"""

from pyk8s.proxy.proxier import ServiceProxy

__all__ = ["ServiceProxy"]
