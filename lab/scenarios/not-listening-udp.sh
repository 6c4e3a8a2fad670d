#!/bin/bash
# Scenario "not-listening-udp": a UDP service on VIP:5300. rs1 answers from the VIP; rs2
# is configured for the tunnel but runs no UDP server, so it answers each datagram with
# ICMP port unreachable, sent from the VIP.
. ./lib.sh
four_hosts
rr_service -u 5300
rs_tunnel rs1 $VIP; rs_arp rs1 $VIP $RS1
rs_tunnel rs2 $VIP; rs_arp rs2 $VIP $RS2           # the fault: no UDP server on rs2
in_ns rs1 python3 ./udp.py serve $VIP 5300 rs1 > /tmp/udp-rs1.log 2>&1 &
sleep 2
four_captures
in_ns client python3 ./udp.py ask $VIP 5300 6
four_done
