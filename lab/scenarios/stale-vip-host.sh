#!/bin/bash
# Scenario "stale-vip-host": a host that served the VIP before the LVS cluster still holds it.
# rr over rs1 and rs2, both healthy. "old" (10.7.0.13, 02:00:00:07:00:0d) was the single web
# server that owned the VIP before the director took it over; it was left running with the
# VIP moved to lo and ARP silenced the LVS-DR way (arp_ignore=1, arp_announce=2), so it
# never claims the VIP in ARP and arp.vip has nothing to see. A second client, client2
# (10.7.0.201), kept the static neighbour entry written back then (VIP -> old's MAC, nud
# permanent, as a firewall or a monitoring host is often configured): its requests go
# straight to old, which answers from the VIP with its own MAC. old is not captured (nobody
# remembers it); the client, the director and both real servers, and client2, are.
. ./lib.sh
stale_vip_old
# old is alive on the segment (a switch has learnt its MAC): without a frame from it the
# bridge floods client2's first SYN, addressed to old's unknown MAC, to every port, and the
# director's and real servers' captures hold a request that was never theirs (recorded once
# so; see the fixture's README).
in_ns old busybox ping -c 1 -W 2 $CLIENT2 > /dev/null
stale_vip_traffic
