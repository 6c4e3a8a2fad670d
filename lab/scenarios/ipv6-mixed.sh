#!/bin/bash
# Scenario "ipv6-mixed": an IPv4 service over IPv6 tunnels (mixed families, Linux >= 3.18).
# The director schedules 10.7.0.100:80 round robin over rs1 and rs2 given by their IPv6
# addresses (`-r [2001:db8:7::11]:80 -i`): each request leaves it as IPv6 director -> real
# server, next header 4, carrying the client's IPv4 packet. Each real server takes it on an
# ip6tnl device in ipip6 mode (any remote), where the IPv4 VIP is, and answers the client
# directly over IPv4 from the VIP. Every host is dual stack on one segment. Ten requests.
# Healthy.
. ./lib.sh
lab_modules_v6
host director $MAC_DIR $DIR_IP/24 $DIR6/64
host rs1 $MAC_RS1 $RS1/24 $RS16/64
host rs2 $MAC_RS2 $RS2/24 $RS26/64
host client $MAC_CLIENT $CLIENT/24
director_vip director $VIP
in_ns director ipvsadm -A -t $VIP:80 -s rr
in_ns director ipvsadm -a -t $VIP:80 -r "[$RS16]:80" -i || die "mixed-family server refused"
in_ns director ipvsadm -a -t $VIP:80 -r "[$RS26]:80" -i || die "mixed-family server refused"
in_ns director ipvsadm -Ln
for n in 1 2; do
    rs=rs$n; eval local6=\$RS${n}6
    in_ns $rs ip -6 tunnel add t4in6 mode ipip6 local "$local6" remote any \
        || die "no ipip6 tunnel on $rs"
    in_ns $rs ip link set t4in6 up
    in_ns $rs ip addr add $VIP/32 dev t4in6
    sysctl_ns $rs net.ipv4.conf.t4in6.rp_filter 0
    sysctl_ns $rs net.ipv4.conf.all.rp_filter 0
done
rs_arp rs1 $VIP $RS1; web rs1 80 rs1
rs_arp rs2 $VIP $RS2; web rs2 80 rs2
capture director eth0 director.pcap
capture rs1 eth0 rs1.pcap
capture rs2 eth0 rs2.pcap
capture client eth0 client.pcap
note_host director.pcap director director $MAC_DIR eth0 ethernet $DIR_IP,$DIR6 $VIP
note_host rs1.pcap rs1 real-server $MAC_RS1 eth0 ethernet $RS1,$RS16 $VIP
note_host rs2.pcap rs2 real-server $MAC_RS2 eth0 ethernet $RS2,$RS26 $VIP
note_host client.pcap client client $MAC_CLIENT eth0 ethernet $CLIENT
curl_n client http://$VIP/ 10
four_done
