"""Removes every iptables rule and chain the service proxy made in this network namespace
(`pyk8s reset` and test teardown, through pyk8s.kubelet.cleanup; or run it alone):

    python -m pyk8s.proxy.cleanup
"""

from __future__ import annotations

import sys

from pyk8s.proxy.iptables import RestoreFailed, remove_all_rules


def main() -> int:
    try:
        if remove_all_rules():
            print("removed the service proxy's iptables rules")
    except RestoreFailed as error:
        print(f"removing the service proxy's iptables rules failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
