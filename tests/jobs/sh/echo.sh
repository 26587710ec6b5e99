#!/bin/sh
# Echo parameters, body and stderr interleaved (with pauses: two pipes carry no
# ordering between writes that land in the same instant).
# runner-secret: token
echo "name=$name"
sleep 0.05
echo "err1" >&2
sleep 0.05
echo "out2"
sleep 0.05
echo "err2" >&2
sleep 0.05
echo "body=$1"
echo "token=$token"
echo "home-set=${HOME:+yes}"
exit "${code:-0}"
