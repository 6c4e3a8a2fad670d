#!/bin/bash
# Scenario "persistence": rr with persistence (-p 120) over two real servers, two client
# hosts taking turns, five requests each. Each client sticks to the server of its first
# connection, and rr does not advance while a client's template exists. Healthy.
# client2 is captured with `-i any -y LINUX_SLL` (Linux cooked v1).
. ./lib.sh
lab_modules
host director $MAC_DIR $DIR_IP/24
host rs1 $MAC_RS1 $RS1/24
host rs2 $MAC_RS2 $RS2/24
host client $MAC_CLIENT $CLIENT/24
host client2 02:00:00:07:00:c9 10.7.0.201/24
director_vip director $VIP
in_ns director ipvsadm -A -t $VIP:80 -s rr -p 120
in_ns director ipvsadm -a -t $VIP:80 -r $RS1:80 -i
in_ns director ipvsadm -a -t $VIP:80 -r $RS2:80 -i
rs_tunnel rs1 $VIP; rs_arp rs1 $VIP $RS1; web rs1 80 rs1
rs_tunnel rs2 $VIP; rs_arp rs2 $VIP $RS2; web rs2 80 rs2
four_captures
# client2 is captured on `any` in the older Linux cooked format (SLL v1, LINKTYPE 113).
capture client2 any client2-any.pcap -y LINUX_SLL
note_host client2-any.pcap client2 client 02:00:00:07:00:c9 any linux_sll 10.7.0.201
for i in 1 2 3 4 5; do
    echo "client: $(in_ns client curl -s -m 4 http://$VIP/)"
    echo "client2: $(in_ns client2 curl -s -m 4 http://$VIP/)"
done
four_done
