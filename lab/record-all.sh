#!/bin/bash
# Re-record every fixture: build the VM if needed, run every scenario in one boot, then
# derive the format variants. About 15-30 minutes under software emulation, depending on
# how busy the machine is. FIXTURES=DIR records into DIR instead of fixtures/.
set -euo pipefail
LAB="$(cd "$(dirname "$0")" && pwd)"
[ -f "$LAB/build/initrd.gz" ] || "$LAB/build-vm.sh"
"$LAB/run-scenario.sh" tutorial wrr arp-vip arp-vip-late rp-filter no-vip reply-via-director \
    not-listening-tcp not-listening-udp udp-wildcard mtu mtu-clamped wlc-long sh-clients persistence \
    span-rp-filter dr-server port-filter gue-healthy gue-no-fou gre-healthy gre-no-gre0 fwmark \
    multi-service keepalived director-state nat-server sctp-healthy stale-vip-host stale-vip-flood \
    health-blackhole health-removed failover-sync failover-nosync \
    failover-nogarp syn-drop syn-reuse-ok \
    drain-healthy drain-persist drain-persist-fixed drain-reuse drain-reuse-fixed
# The IPv6 scenarios boot on their own, with IPv6 on.
"$LAB/run-scenario.sh" ipv6-healthy ipv6-nd-vip ipv6-outer-vip ipv6-mixed
"$LAB/make-variants.sh"
