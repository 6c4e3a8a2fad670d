#!/bin/bash
# Scenario "drain-reuse": rr over two real servers (no persistence); the client opens
# connections from fixed source ports 40001 and 40002 (curl --local-port), then from
# ephemeral ports; rs2's weight is set to 0; two requests from ephemeral ports go to rs1
# (rs2 is passed over); then the client reuses ports 40001 and 40002 twice. The entry of the
# port that went to rs2 is still in the director's table in FIN_WAIT (the director of a tunnel
# sees only the client's half), and with conn_reuse_mode=1 (the default) only TIME_WAIT and
# CLOSE entries are rescheduled (FIN_WAIT only with bit 2): the new SYN follows the old entry
# to the weight-0 server. The fault.
# Recorded as drain-reuse-fixed (a link to this file) it sets expire_nodest_conn=1 on the
# director first: a SYN on the entry of a weight-0 server is then scheduled afresh (the fix
# the drain check gives).
. ./lib.sh
four_hosts
rr_service -t 80
rs_tunnel rs1 $VIP; rs_arp rs1 $VIP $RS1; web rs1 80 rs1
rs_tunnel rs2 $VIP; rs_arp rs2 $VIP $RS2; web rs2 80 rs2
case "$0" in *-fixed.sh) sysctl_ns director net.ipv4.vs.expire_nodest_conn 1 ;; esac
echo "conn_reuse_mode=$(in_ns director cat /proc/sys/net/ipv4/vs/conn_reuse_mode)"
echo "expire_nodest_conn=$(in_ns director cat /proc/sys/net/ipv4/vs/expire_nodest_conn)"
four_captures
echo "port 40001: $(in_ns client curl -s -m 4 --local-port 40001 http://$VIP/)"
echo "port 40002: $(in_ns client curl -s -m 4 --local-port 40002 http://$VIP/)"
echo "ephemeral: $(in_ns client curl -s -m 4 http://$VIP/)"
echo "ephemeral: $(in_ns client curl -s -m 4 http://$VIP/)"
in_ns director ipvsadm -Lnc
in_ns director ipvsadm -e -t $VIP:80 -r $RS2:80 -i -w 0
log "rs2 drained (weight 0)"
echo "ephemeral: $(in_ns client curl -s -m 4 http://$VIP/)"
echo "ephemeral: $(in_ns client curl -s -m 4 http://$VIP/)"
for i in 1 2; do
    sleep 1
    echo "port 40001: $(in_ns client curl -s -m 4 --local-port 40001 http://$VIP/)"
    echo "port 40002: $(in_ns client curl -s -m 4 --local-port 40002 http://$VIP/)"
done
four_done
