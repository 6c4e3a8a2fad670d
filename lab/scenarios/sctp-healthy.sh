#!/bin/bash
# Scenario "sctp-healthy": an SCTP service in tunnel mode (`ipvsadm -A --sctp-service`). rr
# over rs1 and rs2 added with -i; each real server runs an SCTP server bound to the VIP.
# Eight associations from the client, one after the other. Healthy.
. ./lib.sh
four_hosts
modprobe sctp || die "modprobe sctp failed"
in_ns director ipvsadm -A --sctp-service $VIP:9000 -s rr
in_ns director ipvsadm -a --sctp-service $VIP:9000 -r $RS1:9000 -i
in_ns director ipvsadm -a --sctp-service $VIP:9000 -r $RS2:9000 -i
in_ns director ipvsadm -Ln
for rs in rs1 rs2; do
    rs_tunnel $rs $VIP
    in_ns $rs python3 ./sctp.py serve $VIP 9000 $rs > /tmp/sctp-$rs.log 2>&1 &
done
rs_arp rs1 $VIP $RS1; rs_arp rs2 $VIP $RS2
sleep 2
four_captures
in_ns client python3 ./sctp.py ask $VIP 9000 8
four_done
