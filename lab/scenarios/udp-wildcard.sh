#!/bin/bash
# Scenario "udp-wildcard": a UDP service on VIP:5300. rs1's server is bound to the VIP and
# answers from it; rs2's server is bound to 0.0.0.0, so its answers leave with rs2's own
# address as source. The client's connected socket does not accept them (and answers
# them with ICMP port unreachable).
. ./lib.sh
four_hosts
rr_service -u 5300
rs_tunnel rs1 $VIP; rs_arp rs1 $VIP $RS1
rs_tunnel rs2 $VIP; rs_arp rs2 $VIP $RS2
in_ns rs1 python3 ./udp.py serve $VIP 5300 rs1 > /tmp/udp-rs1.log 2>&1 &
in_ns rs2 python3 ./udp.py serve 0.0.0.0 5300 rs2 > /tmp/udp-rs2.log 2>&1 &   # the fault
sleep 2
four_captures
in_ns client python3 ./udp.py ask $VIP 5300 6
four_done
