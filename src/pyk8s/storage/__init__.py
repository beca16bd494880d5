"""Storage: the cluster's state as keys and revisions, with etcd's semantics.

The API server is the only caller. It stores each object as bytes under upstream's keys,
`/registry/<resource>/[<namespace>/]<name>` (api/resources.py's storage_prefix:
`/registry/pods/default/web-1`, `/registry/minions/node-1`); the store gives every write the next
global revision (the object's resourceVersion), guards creates on absence and updates and
deletes on the revision the client sent, and streams every write after a revision to
watchers with no gap between a list and a watch. `interface.py` is the contract;
`sqlite.py` implements it on one SQLite file (the default, one server); `etcd.py` implements
the same contract on an etcd cluster for several servers (etcdwire.py: its gRPC messages). FLOW.md follows a write from commit to
watch event. `keylayout.py` moves the keys of an older layout at start.
"""

from pyk8s.storage.interface import (
    Compacted,
    Event,
    KeyExists,
    KeyNotFound,
    KeyValue,
    ListResult,
    RevisionMismatch,
    RevisionTooNew,
    Store,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
    Watch,
)
from pyk8s.storage.sqlite import SQLiteStore

__all__ = [
    "Compacted",
    "Event",
    "KeyExists",
    "KeyNotFound",
    "KeyValue",
    "ListResult",
    "RevisionMismatch",
    "RevisionTooNew",
    "SQLiteStore",
    "Store",
    "StoreError",
    "StoreTimeout",
    "StoreUnavailable",
    "Watch",
]
