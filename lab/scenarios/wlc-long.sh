#!/bin/bash
# Scenario "wlc-long": wlc over three real servers with weights 1, 1, 2 (rs1, rs2, rs3
# added in that order) and overlapping long connections: eight requests to a CGI that
# answers after a few seconds, started half a second apart, so that each new connection
# is scheduled while earlier ones are still active. Healthy.
. ./lib.sh
lab_modules
host director $MAC_DIR $DIR_IP/24
host rs1 $MAC_RS1 $RS1/24
host rs2 $MAC_RS2 $RS2/24
host rs3 02:00:00:07:00:0d 10.7.0.13/24
host client $MAC_CLIENT $CLIENT/24
director_vip director $VIP
in_ns director ipvsadm -A -t $VIP:80 -s wlc
in_ns director ipvsadm -a -t $VIP:80 -r $RS1:80 -i -w 1
in_ns director ipvsadm -a -t $VIP:80 -r $RS2:80 -i -w 1
in_ns director ipvsadm -a -t $VIP:80 -r 10.7.0.13:80 -i -w 2
for h in rs1:$RS1 rs2:$RS2 rs3:10.7.0.13; do
    rs_tunnel ${h%%:*} $VIP; rs_arp ${h%%:*} $VIP ${h##*:}; web ${h%%:*} 80 ${h%%:*}
done
four_captures
capture rs3 eth0 rs3.pcap
note_host rs3.pcap rs3 real-server 02:00:00:07:00:0d eth0 ethernet 10.7.0.13 $VIP
# Durations 6,5,4,3,6,5,4,3 seconds, one start every 0.5 s.
pids=()
for d in 6 5 4 3 6 5 4 3; do
    in_ns client curl -s -m 20 "http://$VIP/cgi-bin/slow?$d" &
    pids+=($!)
    sleep 0.5
done
wait "${pids[@]}"
four_done
