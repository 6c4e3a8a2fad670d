#!/bin/bash
# Scenario "sh-clients": source hashing over three real servers; one client host with
# eight addresses sends two requests from each, so every address always lands on the same
# server, the one its hash bucket names. Healthy.
. ./lib.sh
lab_modules
host director $MAC_DIR $DIR_IP/24
host rs1 $MAC_RS1 $RS1/24
host rs2 $MAC_RS2 $RS2/24
host rs3 02:00:00:07:00:0d 10.7.0.13/24
CLIENTS="10.7.0.200 10.7.0.201 10.7.0.202 10.7.0.203 10.7.0.204 10.7.0.205 10.7.0.206 10.7.0.207"
host client $MAC_CLIENT $(for a in $CLIENTS; do echo $a/24; done)
director_vip director $VIP
in_ns director ipvsadm -A -t $VIP:80 -s sh
in_ns director ipvsadm -a -t $VIP:80 -r $RS1:80 -i
in_ns director ipvsadm -a -t $VIP:80 -r $RS2:80 -i
in_ns director ipvsadm -a -t $VIP:80 -r 10.7.0.13:80 -i
for h in rs1:$RS1 rs2:$RS2 rs3:10.7.0.13; do
    rs_tunnel ${h%%:*} $VIP; rs_arp ${h%%:*} $VIP ${h##*:}; web ${h%%:*} 80 ${h%%:*}
done
capture director eth0 director.pcap
capture rs1 eth0 rs1.pcap
capture rs2 eth0 rs2.pcap
capture rs3 eth0 rs3.pcap
capture client eth0 client.pcap
note_host director.pcap director director $MAC_DIR eth0 ethernet $DIR_IP $VIP
note_host rs1.pcap rs1 real-server $MAC_RS1 eth0 ethernet $RS1 $VIP
note_host rs2.pcap rs2 real-server $MAC_RS2 eth0 ethernet $RS2 $VIP
note_host rs3.pcap rs3 real-server 02:00:00:07:00:0d eth0 ethernet 10.7.0.13 $VIP
note_host client.pcap client client $MAC_CLIENT eth0 ethernet "${CLIENTS// /,}"
for round in 1 2; do
    for a in $CLIENTS; do
        echo "$a: $(in_ns client curl -s -m 4 --interface $a http://$VIP/)"
    done
done
four_done
