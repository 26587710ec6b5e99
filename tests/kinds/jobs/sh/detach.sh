#!/bin/sh
# Leaves a process behind in a session of its own: holding the output ($how=hold) or
# with the output redirected ($how=redirect); then succeeds.
if [ "$how" = redirect ]; then
    setsid sleep 120 >/dev/null 2>&1 &
else
    setsid sleep 120 &
fi
echo "child $!"
