#!/bin/bash
# Scenario "stale-vip-flood": stale-vip-host without old's ping before the captures. The
# bridge has not learnt old's MAC when client2 sends its first SYN (to 02:00:00:07:00:0d, its
# stale static entry for the VIP), so it floods that frame to every port, as a switch does
# with a destination it has not learnt: the director's and the real servers' captures hold a
# request that was never addressed to them. A verifier must not take the director's copy for
# a request the director received (and forwarded unwrapped): the director's kernel drops a
# frame for another MAC. Once old answers, the bridge learns its MAC and floods no more.
. ./lib.sh
stale_vip_old
stale_vip_traffic
