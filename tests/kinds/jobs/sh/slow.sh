#!/bin/sh
# Takes a second: a run to have in flight.
echo start
sleep 1
echo end
