"""Removes every rule the service proxy made in this network namespace, in both modes: the
KUBE- chains of the iptables mode (both iptables backends) and the nftables mode's table
`ip kube-proxy` (`pyk8s reset` and test teardown, through pyk8s.kubelet.cleanup; or run it
alone):

    python -m pyk8s.proxy.cleanup
"""

from __future__ import annotations

import sys

from pyk8s.proxy.iptables import RestoreFailed, remove_all_rules
from pyk8s.proxy.nftables import NftFailed, remove_table


def remove_all() -> list[str]:
    """Removes both modes' rules; returns what was removed ("iptables", "nftables").
    Raises RestoreFailed or NftFailed when something could not be removed."""
    removed = []
    if remove_all_rules():
        removed.append("iptables")
    if remove_table():
        removed.append("nftables")
    return removed


def main() -> int:
    try:
        for mode in remove_all():
            print(f"removed the service proxy's {mode} rules")
    except (RestoreFailed, NftFailed) as error:
        print(f"removing the service proxy's rules failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
