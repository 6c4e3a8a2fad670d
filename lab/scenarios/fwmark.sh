#!/bin/bash
# Scenario "fwmark": a firewall-mark service. The director marks TCP to the VIP on ports
# 80 and 8080 with mark 1 (iptables mangle PREROUTING) and `ipvsadm -A -f 1 -s rr` balances
# the mark over rs1 and rs2, added with -i and no port (each connection keeps its own
# port). One rr rotation covers both ports. The rules name no address and no port: the
# VIP and the ports come from the traffic. The client alternates 80 and 8080, six each.
# Healthy.
. ./lib.sh
four_hosts
in_ns director iptables -t mangle -A PREROUTING -d $VIP -p tcp -m multiport --dports 80,8080 \
    -j MARK --set-mark 1 || die "iptables mark failed"
in_ns director ipvsadm -A -f 1 -s rr
in_ns director ipvsadm -a -f 1 -r $RS1 -i
in_ns director ipvsadm -a -f 1 -r $RS2 -i
in_ns director ipvsadm -Ln
for rs in rs1 rs2; do
    rs_tunnel $rs $VIP
    web $rs 80 "$rs port 80"
    web $rs 8080 "$rs port 8080"
done
rs_arp rs1 $VIP $RS1
rs_arp rs2 $VIP $RS2
four_captures
for i in 1 2 3 4 5 6; do
    curl_n client http://$VIP/ 1
    curl_n client http://$VIP:8080/ 1
done
four_done
