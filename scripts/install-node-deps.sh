#!/bin/sh
# Debian packages the node agent needs (containerd, runc, CNI plugins, busybox for the test
# images, gcc for the static pause binary, iptables for hostPort/portmap and the service
# proxy (nftables: nft for its --proxy-mode nftables), conntrack to flush stale UDP entries of removed Service endpoints, docker-registry
# for the registry-mirror tests, etcd-server and etcd-client for the etcd datastore: embedded
# etcd members and the store tests' clusters). Idempotent: prints nothing when everything is
# installed. Never starts a service (containerd and etcd are run by pyk8s or the tests).
set -e
PACKAGES="containerd runc containernetworking-plugins busybox-static iptables nftables conntrack gcc libc6-dev openssl docker-registry etcd-server etcd-client"
missing=""
for package in $PACKAGES; do
    dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"
done
[ -z "$missing" ] && exit 0
echo "installing Debian packages:$missing"
apt-get update -qq >/dev/null
# policy-rc.d 101 keeps Debian's containerd.service and etcd.service from starting in the
# host's namespace.
created_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && created_policy=1
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
[ -n "$created_policy" ] && rm -f /usr/sbin/policy-rc.d
exit 0
