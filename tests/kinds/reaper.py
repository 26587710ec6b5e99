"""init for one test: runs a command as a subreaper and reaps every process that ends under
it, as systemd does for a service; passes SIGTERM and SIGINT on to the command; exits with
the command's code once nothing is left under it.

    python reaper.py COMMAND [ARG…]
"""

import ctypes
import os
import signal
import sys

PR_SET_CHILD_SUBREAPER = 36

ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
child = os.fork()
if child == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda signum, frame: os.kill(child, signum))
code = 0
while True:
    try:
        pid, status = os.waitpid(-1, 0)
    except ChildProcessError:
        break
    if pid == child:
        code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
