#!/bin/bash
# Scenario "wrr": another address plan and service port, wrr over three real servers with
# weights 3, 2, 1 (added in that order), 30 requests. Healthy. Two capture variants:
# rs-b is captured with `-i any` (Linux cooked capture, it sees eth0 and tunl0 at once),
# rs-a is captured on eth0 and, separately, on tunl0 (raw IP, the decapsulated requests).
. ./lib.sh
VIP=192.168.60.80
PORT=8080
lab_modules
host lb    02:00:00:3c:00:05 192.168.60.5/24
host rs-a  02:00:00:3c:00:0b 192.168.60.11/24
host rs-b  02:00:00:3c:00:0c 192.168.60.12/24
host rs-c  02:00:00:3c:00:0d 192.168.60.13/24
host user  02:00:00:3c:00:c8 192.168.60.200/24

director_vip lb $VIP
in_ns lb ipvsadm -A -t $VIP:$PORT -s wrr
in_ns lb ipvsadm -a -t $VIP:$PORT -r 192.168.60.11:$PORT -i -w 3
in_ns lb ipvsadm -a -t $VIP:$PORT -r 192.168.60.12:$PORT -i -w 2
in_ns lb ipvsadm -a -t $VIP:$PORT -r 192.168.60.13:$PORT -i -w 1

for h in a:11 b:12 c:13; do
    rs_tunnel rs-${h%%:*} $VIP
    rs_arp rs-${h%%:*} $VIP 192.168.60.${h##*:}
    web rs-${h%%:*} $PORT "rs-${h%%:*}"
done

capture lb   eth0 lb.pcap
capture rs-a eth0 rs-a.pcap
capture rs-a tunl0 rs-a-tunl0.pcap
capture rs-b any rs-b-any.pcap
capture rs-c eth0 rs-c.pcap
capture user eth0 user.pcap
note_host lb.pcap lb director 02:00:00:3c:00:05 eth0 ethernet 192.168.60.5 $VIP
note_host rs-a.pcap rs-a real-server 02:00:00:3c:00:0b eth0 ethernet 192.168.60.11 $VIP
note_host rs-a-tunl0.pcap rs-a real-server 02:00:00:3c:00:0b tunl0 raw 192.168.60.11 $VIP
note_host rs-b-any.pcap rs-b real-server 02:00:00:3c:00:0c any linux_sll2 192.168.60.12 $VIP
note_host rs-c.pcap rs-c real-server 02:00:00:3c:00:0d eth0 ethernet 192.168.60.13 $VIP
note_host user.pcap user client 02:00:00:3c:00:c8 eth0 ethernet 192.168.60.200

curl_n user http://$VIP:$PORT/ 30
director_truth lb
stop_captures
write_hosts
