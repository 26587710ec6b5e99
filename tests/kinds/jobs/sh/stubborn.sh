#!/bin/sh
# Ignores SIGTERM (and so do its children), and starts a child that leaves its session.
trap '' TERM
setsid sleep 300 &
echo "escaped $!"
echo "pid $$"
while :; do sleep 0.05; done
