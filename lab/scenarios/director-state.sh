#!/bin/bash
# Scenario "director-state": the director's snapshot disagrees with the captures. The
# tutorial's healthy rr service over rs1 and rs2; the client makes 6 requests before the
# captures start and 10 while they run. The director's connection table (conns.txt, taken
# right after) holds all 16 entries and its counters (stats.txt) count 16 connections;
# the captures show 10. Healthy traffic; the snapshot holds 6 connections that no capture
# shows (`--director-state conns.txt --director-state stats.txt`).
. ./lib.sh
four_hosts
rr_service -t 80
rs_tunnel rs1 $VIP; rs_arp rs1 $VIP $RS1; web rs1 80 rs1
rs_tunnel rs2 $VIP; rs_arp rs2 $VIP $RS2; web rs2 80 rs2
curl_n client http://$VIP/ 6
# Forget the VIP's MAC, so that the captured traffic starts with ARP as the tutorial's does.
in_ns client ip neigh flush all
four_captures
curl_n client http://$VIP/ 10
four_done
