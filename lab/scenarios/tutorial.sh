#!/bin/bash
# Scenario "tutorial": the classroom tutorial as written. Director server1 with the VIP
# on tunl0, rr over two real servers in tunnel mode, ten requests from the client. Healthy.
. ./lib.sh
VIP=172.25.67.100
lab_modules
host server1 02:00:00:67:00:01 172.25.67.1/16
host server2 02:00:00:67:00:02 172.25.67.2/16
host server3 02:00:00:67:00:03 172.25.67.3/16
host client  02:00:00:fe:00:43 172.25.254.67/16

# Director (the tutorial's commands).
director_vip server1 $VIP
in_ns server1 ipvsadm -A -t $VIP:80 -s rr
in_ns server1 ipvsadm -a -t $VIP:80 -r 172.25.67.2:80 -i
in_ns server1 ipvsadm -a -t $VIP:80 -r 172.25.67.3:80 -i
in_ns server1 ipvsadm -ln

# Real servers.
for n in 2 3; do
    rs_tunnel server$n $VIP
    rs_arp server$n $VIP 172.25.67.$n
    web server$n 80 server$n
done

capture server1 eth0 server1.pcap
capture server2 eth0 server2.pcap
capture server3 eth0 server3.pcap
capture client  eth0 client.pcap
note_host server1.pcap server1 director 02:00:00:67:00:01 eth0 ethernet 172.25.67.1 $VIP
note_host server2.pcap server2 real-server 02:00:00:67:00:02 eth0 ethernet 172.25.67.2 $VIP
note_host server3.pcap server3 real-server 02:00:00:67:00:03 eth0 ethernet 172.25.67.3 $VIP
note_host client.pcap client client 02:00:00:fe:00:43 eth0 ethernet 172.25.254.67

# The tutorial's client loop: prints server2 and server3 in turn.
curl_n client http://$VIP/ 10
director_truth server1
stop_captures
write_hosts
