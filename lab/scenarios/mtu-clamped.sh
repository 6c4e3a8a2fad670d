#!/bin/bash
# Scenario "mtu-clamped": the mtu scenario's traffic (the client POSTs 6000 bytes, three
# times; MTU 1500 everywhere, the tunnel adds 20 bytes) with the usual fix in place: each
# real server clamps the MSS of its SYN-ACKs to 1440 (iptables TCPMSS in mangle OUTPUT), so
# the client's segments are at most 1480 bytes of IP and fit the tunnel: no ICMP
# fragmentation needed, nothing resent. Healthy.
. ./lib.sh
four_hosts
rr_service -t 80
for rs in rs1 rs2; do
    in_ns $rs iptables -t mangle -A OUTPUT -o eth0 -p tcp --tcp-flags SYN,RST SYN \
        -j TCPMSS --set-mss 1440
done
rs_tunnel rs1 $VIP; rs_arp rs1 $VIP $RS1; web rs1 80 rs1
rs_tunnel rs2 $VIP; rs_arp rs2 $VIP $RS2; web rs2 80 rs2
head -c 6000 /dev/zero | tr '\0' x > /tmp/body
four_captures
curl_n client http://$VIP/cgi-bin/post 3 --data-binary @/tmp/body
four_done
in_ns rs1 iptables -t mangle -L OUTPUT -v -n
