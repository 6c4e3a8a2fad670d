#!/bin/bash
# Scenario "failover-nogarp": as failover-sync (sync daemon on), but the client drops
# gratuitous ARP for the VIP (arptables on the client), so it goes on sending to the dead
# master's MAC after the switch until its neighbour entry is probed and asked again
# (base_reachable_time_ms 5000 on the client to keep this short). Faulty on purpose: the
# clients are not told the new MAC.
. ./lib.sh
. ./failover.sh
SCENARIO=failover-nogarp
failover_run 1 nogarp
