#!/bin/sh
# Appends "<time> <pid>" to $file every 50 ms until stopped; one at a time.
# runner-lock: beat
echo "pid $$"
while :; do
    echo "$(date +%s.%N) $$" >> "$file"
    sleep 0.05
done
