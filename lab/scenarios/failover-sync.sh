#!/bin/bash
# Scenario "failover-sync": two directors under keepalived (VRRP instance VI_1, vrid 7,
# director priority 150 master, director2 100 backup, advert_int 1) with the same
# virtual_server 10.7.0.100:80 (rr, TUN, rs1 and rs2), and the IPVS sync daemon following
# VRRP (lvs_sync_daemon eth0 VI_1: master on the VRRP master, backup on the other). Four
# long-lived connections (hold.py) are open when the master dies (eth0 down in its
# namespace); director2 takes over, sends gratuitous ARP for the VIP, and forwards the
# established connections to the same real servers from the entries the sync daemon gave
# it. Four curl requests before and after. Healthy.
. ./lib.sh
. ./failover.sh
SCENARIO=failover-sync
failover_run 1
