#!/bin/sh
# Start two background children that sleep, record every pid, then wait.
# runner-timeout: 20
sleep 300 &
echo "child $!"
sh -c 'sleep 300' &
echo "child $!"
echo "parent $$"
wait
