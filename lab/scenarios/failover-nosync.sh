#!/bin/bash
# Scenario "failover-nosync": as failover-sync, but without lvs_sync_daemon: director2
# takes over with an empty connection table. The four long-lived connections' next
# packets reach it as non-SYN TCP, which IPVS does not schedule; they go to its own
# stack, where nothing listens on the VIP:80. Faulty on purpose: established connections
# do not survive the failover.
. ./lib.sh
. ./failover.sh
SCENARIO=failover-nosync
failover_run 0
