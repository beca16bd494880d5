"""The pod network across nodes (what flannel does for k3s): every node routes the other
nodes' pod CIDRs, and pod traffic that leaves the cluster CIDR is masqueraded.

A component of the agent beside the kubelet and the proxy, knowing the cluster only
through a Node informer (pyk8s.client). Each node publishes how to reach its pods in its
own Node's annotations, exactly as flannel's kube subnet manager does:

    flannel.alpha.coreos.com/backend-type   "vxlan" | "host-gw"
    flannel.alpha.coreos.com/backend-data   {"VNI":1,"VtepMAC":"<flannel.1's MAC>"} (vxlan), null
    flannel.alpha.coreos.com/public-ip      the node's address (the VXLAN underlay)
    flannel.alpha.coreos.com/kube-subnet-manager  "true"

and programs the kernel from everyone else's (plan.py is the pure part: Nodes → desired
routes, neighbours and FDB entries → `ip -batch` / `bridge -batch` lines; kernel.py runs
them):

- vxlan (default, as k3s): device `flannel.1` (VNI 1, UDP 8472, no learning) holding
  <own podCIDR>.0/32; for each other node `<podCIDR> via <podCIDR>.0 dev flannel.1 onlink`,
  a permanent neighbour <podCIDR>.0 → its VtepMAC and an FDB entry VtepMAC → its public IP.
- host-gw: `<podCIDR> via <public IP>` (the nodes share a link).

    Node informer ──(any change)──> sync: plan(own node, other nodes) vs what the kernel has
        ──> ip -batch / bridge -batch (only the differences) ; resync every 30 s

Masquerading (flannel's --ip-masq): the nat chain FLANNEL-POSTRTG masquerades pod traffic
leaving the cluster CIDR (reaching a node's address or the API, say) so replies come back
the way they went; traffic between pods keeps its addresses. The CNI bridge plugin's
ipMasq stays off: it would masquerade pod-to-pod traffic across nodes too.
"""

from pyk8s.flannel.service import BACKENDS, FlannelNetwork

__all__ = ["BACKENDS", "FlannelNetwork"]
