"""The Container Runtime Interface (runtime.v1) spoken to containerd: hand-written protobuf
schemas (`messages`), a tiny proto3 codec (`proto`) and an asyncio gRPC client (`client`)."""

from pyk8s.kubelet.cri.client import CRIClient, CRIError

__all__ = ["CRIClient", "CRIError"]
