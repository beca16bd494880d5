"""The Container Runtime Interface (runtime.v1) spoken to containerd: hand-written protobuf
schemas (`messages`), a tiny proto3 codec (`proto`), unary gRPC over our own HTTP/2
(`http2`, with `hpack`) and the asyncio CRI client on top (`client`)."""

from pyk8s.kubelet.cri.client import CRIClient, CRIError

__all__ = ["CRIClient", "CRIError"]
