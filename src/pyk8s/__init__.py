"""pyk8s: Kubernetes, written in Python."""
