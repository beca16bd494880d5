"""The node agent's kubelet: pods on containerd over CRI (see agent.py for the flow)."""
