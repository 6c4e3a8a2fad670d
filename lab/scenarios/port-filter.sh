#!/bin/bash
# Scenario "port-filter": a healthy deployment (rr over two real servers, all configured as
# in the tutorial) captured the way users often do it: `tcpdump -i eth0 tcp port 80` on
# every host. The filter keeps client -> VIP on the client and the director and the
# replies, but drops every IP-in-IP packet (IP protocol 4, not TCP) and every ARP packet.
. ./lib.sh
four_hosts
rr_service -t 80
rs_tunnel rs1 $VIP; rs_arp rs1 $VIP $RS1; web rs1 80 rs1
rs_tunnel rs2 $VIP; rs_arp rs2 $VIP $RS2; web rs2 80 rs2
capture director eth0 director.pcap tcp port 80
capture rs1 eth0 rs1.pcap tcp port 80
capture rs2 eth0 rs2.pcap tcp port 80
capture client eth0 client.pcap tcp port 80
note_host director.pcap director director $MAC_DIR eth0 ethernet $DIR_IP $VIP
note_host rs1.pcap rs1 real-server $MAC_RS1 eth0 ethernet $RS1 $VIP
note_host rs2.pcap rs2 real-server $MAC_RS2 eth0 ethernet $RS2 $VIP
note_host client.pcap client client $MAC_CLIENT eth0 ethernet $CLIENT
curl_n client http://$VIP/ 10
four_done
