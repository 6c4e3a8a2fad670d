#!/bin/bash
# Scenario "syn-drop": the 1-second SYN drop. The tutorial's rr service over rs1 and rs2;
# the director has net.ipv4.vs.conntrack=1 and conntrack really tracking in its namespace
# (an iptables rule matching conntrack state on the VIP). The client reuses two fixed source
# ports (reuse.py: SO_REUSEADDR, each connection ended with an RST), so each new connection
# from such a port finds the previous connection's IPVS entry in CLOSE, which
# conn_reuse_mode=1 treats as reusable while it still refers to a confirmed conntrack entry,
# and ip_vs_in() drops the SYN (NF_DROP) to let the old conntrack entry go. The client's SYN
# retransmission, 1 s later, is scheduled afresh and tunnelled. A few ordinary curl requests
# (new ports) go through at once.
. ./lib.sh
. ./syn-reuse.sh
syn_reuse_traffic 1
