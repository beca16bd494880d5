"""The Kubernetes API server: HTTPS, authentication, discovery and the REST verbs.

Request flow: `authn` (who is asking) → `server` (routing, negotiation, verbs) → `registry` (object semantics:
defaults, strategies, validation, compare-and-swap) → the store (`pyk8s.storage`).
Watches (`watch`) turn store events into API watch events. `bootstrap` creates what every
cluster has from the start. Other components reach this only over HTTPS.
"""
