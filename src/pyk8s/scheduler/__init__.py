"""The scheduler: puts each pending pod on a node (upstream's kube-scheduler).

It talks to the cluster only through the API client: informers on pods and nodes in,
`pods/<name>/binding`, `pods/<name>/status` and Events out. Modules, from pure to I/O:
- requests: pod requests and node allocatable as integers;
- filters, scores: upstream's filter and score plugins on plain dicts;
- cache: nodes and the pods placed on them (with assumed pods);
- queue: pending pods (active, backing off, unschedulable);
- algorithm: one decision (filter, score, pick) and upstream's FitError message;
- scheduler: the `Scheduler` service wiring informers, the loop and the API calls.
"""

from pyk8s.scheduler.scheduler import Scheduler

__all__ = ["Scheduler"]
