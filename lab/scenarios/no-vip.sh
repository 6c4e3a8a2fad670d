#!/bin/bash
# Scenario "no-vip": rs2's tunl0 is up but does not hold the VIP. rs2 decapsulates the
# requests, finds them addressed to an address it does not own, and drops them (it does
# not forward): it never answers; the client retransmits its SYN.
. ./lib.sh
four_hosts
rr_service -t 80
rs_tunnel rs1 $VIP; rs_arp rs1 $VIP $RS1; web rs1 80 rs1
in_ns rs2 ip link set tunl0 up                  # the fault: no VIP on tunl0
sysctl_ns rs2 net.ipv4.conf.tunl0.rp_filter 0
rs_arp rs2 $VIP $RS2; web rs2 80 rs2
four_captures
curl_n client http://$VIP/ 4
four_done
