#!/bin/bash
# Scenario "syn-reuse-ok": syn-drop's traffic and firewall rule with net.ipv4.vs.conntrack=0
# (the default). IPVS keeps no conntrack reference in its entries, so a reused port's SYN
# that finds the previous connection's entry in CLOSE expires it and is scheduled at once:
# no SYN is dropped. Healthy.
. ./lib.sh
. ./syn-reuse.sh
syn_reuse_traffic 0
