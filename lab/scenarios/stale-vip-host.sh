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
OLD=10.7.0.13
MAC_OLD=02:00:00:07:00:0d
CLIENT2=10.7.0.201
MAC_CLIENT2=02:00:00:07:00:c9
four_hosts
host old $MAC_OLD $OLD/24
host client2 $MAC_CLIENT2 $CLIENT2/24
rr_service -t 80
rs_tunnel rs1 $VIP; rs_arp rs1 $VIP $RS1; web rs1 80 rs1
rs_tunnel rs2 $VIP; rs_arp rs2 $VIP $RS2; web rs2 80 rs2
# old: the VIP on lo, ARP for it neither answered nor announced (the fault is that it is
# still there at all), and its web server still up.
in_ns old ip addr add $VIP/32 dev lo
sysctl_ns old net.ipv4.conf.all.arp_ignore 1
sysctl_ns old net.ipv4.conf.all.arp_announce 2
sysctl_ns old net.ipv4.conf.eth0.arp_ignore 1
sysctl_ns old net.ipv4.conf.eth0.arp_announce 2
web old 80 old
# client2's stale static entry.
in_ns client2 ip neigh replace $VIP lladdr $MAC_OLD dev eth0 nud permanent
# old is alive on the segment (a switch has learnt its MAC): without a frame from it the
# bridge floods client2's first SYN, addressed to old's unknown MAC, to every port, and the
# director's and real servers' captures hold a request that was never theirs (recorded once
# so; see the fixture's README).
in_ns old busybox ping -c 1 -W 2 $CLIENT2 > /dev/null
four_captures
capture client2 eth0 client2.pcap
note_host client2.pcap client2 client $MAC_CLIENT2 eth0 ethernet $CLIENT2
curl_n client http://$VIP/ 6
curl_n client2 http://$VIP/ 4
curl_n client http://$VIP/ 2
in_ns client2 ip neigh show
four_done
