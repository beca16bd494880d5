"""The control loops (upstream's kube-controller-manager): each controller watches the
API through informers, queues object keys, and reconciles one key at a time through the
API client — never another component's internals.

`base.Controller` is the shared shape (informers → rate-limited queue → `reconcile(key)`);
`events.EventRecorder` writes Events with upstream's aggregation. `manager` starts them all.
"""
