#!/bin/bash
# Scenario "drain-persist": rr with persistence (-p 60) over two real servers; rs2 is set to
# weight 0 while a client is pinned to it. Two clients each make two requests (rr places one
# on rs1, the other on rs2, then their templates hold them); rs2's weight is set to 0; two
# new clients make one request each (both scheduled to rs1: rs2 is passed over); then the
# first two clients make three more requests each. With expire_quiescent_template=0 (the
# default) the client pinned to rs2 keeps opening new connections there: the fault.
# Recorded as drain-persist-fixed (a link to this file) it sets expire_quiescent_template=1 on
# the director first: the template to rs2 is dropped at its next use and the client goes to
# rs1 (the fix the drain check gives).
. ./lib.sh
four_hosts
host client2 02:00:00:07:00:c9 10.7.0.201/24
host client3 02:00:00:07:00:ca 10.7.0.202/24
host client4 02:00:00:07:00:cb 10.7.0.203/24
in_ns director ipvsadm -A -t $VIP:80 -s rr -p 60
in_ns director ipvsadm -a -t $VIP:80 -r $RS1:80 -i
in_ns director ipvsadm -a -t $VIP:80 -r $RS2:80 -i
rs_tunnel rs1 $VIP; rs_arp rs1 $VIP $RS1; web rs1 80 rs1
rs_tunnel rs2 $VIP; rs_arp rs2 $VIP $RS2; web rs2 80 rs2
case "$0" in *-fixed.sh) sysctl_ns director net.ipv4.vs.expire_quiescent_template 1 ;; esac
echo "expire_quiescent_template=$(in_ns director cat /proc/sys/net/ipv4/vs/expire_quiescent_template)"
four_captures
for c in client2:c9:201 client3:ca:202 client4:cb:203; do
    IFS=: read -r name mac last <<< "$c"
    capture $name eth0 $name.pcap
    note_host $name.pcap $name client 02:00:00:07:00:$mac eth0 ethernet 10.7.0.$last
done
for i in 1 2; do
    echo "client: $(in_ns client curl -s -m 4 http://$VIP/)"
    echo "client2: $(in_ns client2 curl -s -m 4 http://$VIP/)"
done
in_ns director ipvsadm -Lnc
in_ns director ipvsadm -e -t $VIP:80 -r $RS2:80 -i -w 0
log "rs2 drained (weight 0)"
echo "client3: $(in_ns client3 curl -s -m 4 http://$VIP/)"
echo "client4: $(in_ns client4 curl -s -m 4 http://$VIP/)"
for i in 1 2 3; do
    echo "client: $(in_ns client curl -s -m 4 http://$VIP/)"
    echo "client2: $(in_ns client2 curl -s -m 4 http://$VIP/)"
done
four_done
