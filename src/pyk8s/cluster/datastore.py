"""Which store a server keeps its state in, from `--datastore` (k3s's --datastore-endpoint):

- "" or `sqlite:PATH`: the SQLite store (one server; the default file is
  `<data-dir>/server/state.db`);
- `etcd://H1:2379[,H2:2379...]`, `http://...` or `https://...`: the etcd store on an external
  etcd cluster, with `--etcd-cafile/--etcd-certfile/--etcd-keyfile` for TLS (client
  certificates, as upstream's apiserver's --etcd-cafile/--etcd-certfile/--etcd-keyfile).

The embedded etcd of `--cluster-init` is chosen in servercluster.py, before this.
"""

from __future__ import annotations

from pyk8s.storage.interface import Store

ETCD_SCHEMES = ("etcd://", "http://", "https://")


def is_etcd_datastore(datastore: str) -> bool:
    return datastore.lower().startswith(ETCD_SCHEMES)


def open_datastore(config) -> Store:
    """The (not yet started) store `config.datastore` names."""
    if is_etcd_datastore(config.datastore):
        from pyk8s.storage.etcd import EtcdStore

        return EtcdStore(config.datastore, ca_file=config.etcd_cafile, cert_file=config.etcd_certfile,
                         key_file=config.etcd_keyfile)
    from pyk8s.storage.sqlite import SQLiteStore

    config.datastore_path.parent.mkdir(parents=True, exist_ok=True)
    return SQLiteStore(str(config.datastore_path))


def describe(store: Store, config) -> str:
    if is_etcd_datastore(config.datastore) or type(store).__name__ == "EtcdStore":
        return repr(store)
    return f"sqlite {config.datastore_path}"
