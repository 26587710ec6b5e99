#!/bin/sh
# What a script is given: its process group and session, its folder, its open files.
# Ends with the exit code $code, or killed by the signal $sig.
read -r stat < /proc/$$/stat
set -- ${stat##*) }
echo "pid $$ pgid $3 sid $4"
echo "cwd $(pwd)"
for fd in /proc/$$/fd/*; do
    printf 'fd %s ' "${fd##*/}"
    readlink "$fd"
done
if [ -n "$sig" ]; then
    kill -s "$sig" $$
fi
exit "${code:-0}"
