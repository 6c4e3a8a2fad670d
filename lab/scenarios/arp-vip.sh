#!/bin/bash
# Scenario "arp-vip": rs2 has no arptables rules, so it answers ARP requests for the VIP
# (arp_ignore=0) and announces the VIP as the sender of its own ARP requests
# (arp_announce=0). Six requests, then the client's neighbour cache is flushed so that it
# asks for the VIP again, then six more requests.
. ./lib.sh
four_hosts
rr_service -t 80
rs_tunnel rs1 $VIP; rs_arp rs1 $VIP $RS1; web rs1 80 rs1
rs_tunnel rs2 $VIP;                          web rs2 80 rs2   # no rs_arp: the fault
four_captures
curl_n client http://$VIP/ 6
in_ns client ip neigh show
in_ns client ip neigh flush all
curl_n client http://$VIP/ 6
in_ns client ip neigh show
four_done
