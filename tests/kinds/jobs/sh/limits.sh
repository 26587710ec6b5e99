#!/bin/sh
# Shows its resource limits; with $python, tries what they forbid ($try=memory|processes).
# runner-limit: nproc=5 as=256M
# runner-limit: nofile=64
grep -E '^Max (processes|address space|open files)' /proc/$$/limits
case "$try" in
memory) exec "$python" -c 'b = bytearray(512 << 20); print("allocated", len(b))' ;;
processes) exec "$python" "$(dirname "$0")/../../forks.py" ;;
esac
