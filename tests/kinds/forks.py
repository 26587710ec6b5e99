"""Fork sleeping children until the system refuses one (as an unprivileged user when run
as root: RLIMIT_NPROC does not hold for root); print how many could start."""

import os
import sys
import time

if os.getuid() == 0:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
children = []
refused = ""
for _ in range(20):
    try:
        pid = os.fork()
    except OSError as exc:
        refused = exc.strerror or str(exc)
        break
    if pid == 0:
        time.sleep(5)
        os._exit(0)
    children.append(pid)
print(f"started {len(children)} refused {refused}", flush=True)
for pid in children:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
sys.exit(0)
