#!/bin/bash
# Scenario "multi-service": two VIPs and three services on one director, each with its own
# scheduler: TCP 10.7.0.100:80 rr; TCP 10.7.0.101:8080 wrr with rs1 weight 1 and rs2
# weight 3; UDP 10.7.0.101:5300 rr with persistence (-p 60). Both real servers hold both
# VIPs on tunl0 and keep quiet about them in ARP. Two clients: the first makes 8 web
# requests to each TCP service, then both ask 3 UDP queries each (persistence pins each
# client to one server). Healthy.
. ./lib.sh
VIP2=10.7.0.101
CLIENT2=10.7.0.201
lab_modules
host director $MAC_DIR $DIR_IP/24
host rs1 $MAC_RS1 $RS1/24
host rs2 $MAC_RS2 $RS2/24
host client $MAC_CLIENT $CLIENT/24
host client2 02:00:00:07:00:c9 $CLIENT2/24
director_vip director $VIP
in_ns director ip addr add $VIP2 dev tunl0
in_ns director ipvsadm -A -t $VIP:80 -s rr
in_ns director ipvsadm -a -t $VIP:80 -r $RS1:80 -i
in_ns director ipvsadm -a -t $VIP:80 -r $RS2:80 -i
in_ns director ipvsadm -A -t $VIP2:8080 -s wrr
in_ns director ipvsadm -a -t $VIP2:8080 -r $RS1:8080 -i -w 1
in_ns director ipvsadm -a -t $VIP2:8080 -r $RS2:8080 -i -w 3
in_ns director ipvsadm -A -u $VIP2:5300 -s rr -p 60
in_ns director ipvsadm -a -u $VIP2:5300 -r $RS1:5300 -i
in_ns director ipvsadm -a -u $VIP2:5300 -r $RS2:5300 -i
in_ns director ipvsadm -Ln
for rs in rs1 rs2; do
    rs_tunnel $rs $VIP
    in_ns $rs ip addr add $VIP2/32 dev tunl0
    web $rs 80 "$rs"
    web $rs 8080 "$rs port 8080"
    in_ns $rs python3 ./udp.py serve $VIP2 5300 $rs > /tmp/udp-$rs.log 2>&1 &
done
rs_arp rs1 $VIP $RS1; rs_arp rs1 $VIP2 $RS1
rs_arp rs2 $VIP $RS2; rs_arp rs2 $VIP2 $RS2
sleep 2
capture director eth0 director.pcap
capture rs1 eth0 rs1.pcap
capture rs2 eth0 rs2.pcap
capture client eth0 client.pcap
note_host director.pcap director director $MAC_DIR eth0 ethernet $DIR_IP $VIP,$VIP2
note_host rs1.pcap rs1 real-server $MAC_RS1 eth0 ethernet $RS1 $VIP,$VIP2
note_host rs2.pcap rs2 real-server $MAC_RS2 eth0 ethernet $RS2 $VIP,$VIP2
note_host client.pcap client client $MAC_CLIENT eth0 ethernet $CLIENT
capture client2 eth0 client2.pcap
note_host client2.pcap client2 client 02:00:00:07:00:c9 eth0 ethernet $CLIENT2
curl_n client http://$VIP/ 8
curl_n client http://$VIP2:8080/ 8
in_ns client python3 ./udp.py ask $VIP2 5300 3
in_ns client2 python3 ./udp.py ask $VIP2 5300 3
four_done
