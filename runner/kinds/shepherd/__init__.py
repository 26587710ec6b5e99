"""The spawner and its shepherds: the processes that run script jobs, off the server's loop.

    server ──control socket──► spawner (spawnd.py)  a subreaper: forks shepherds, ends the
      │                          ├─► shepherd         orphans of a shepherd that died
      └── a socket each ────────►└─► shepherd (herd.py)  a subreaper too: one run at a time,
                                       │                  reused; reads the script's pipes
                                       └─► script (its own session) ─► whatever it starts

Why processes (issue 13): spawning from the server's event loop stalls the loop while each
child execs, and keeps all the work on one core; a shepherd waiting for its request spawns
at once on the other core, reads the script's output there and sends it on in few
messages, so that a short run costs the server one message each way. Why a subreaper per
run (issue 15, items 3 and 8): every process a script starts, even one that leaves its
process group (``setsid … &``), stays a descendant of that run's shepherd, so the run's
end, timeout or cancel reaches all of them, and after a kill -9 of the server the shepherd
still ends them.

These modules import the standard library only: the spawner runs them as a package of its
own (``python -I -S -c …``, see :mod:`runner.kinds.spawner`) and starts in milliseconds.
The lock fd it is given (the server's hold on its state dir, :mod:`runner.statelock`) is
kept open by the spawner and every shepherd until their scripts are gone, so no new server
takes over the state dir while an old script still runs.

Protocol: one message per datagram (SOCK_SEQPACKET); the first byte says what it is,
the rest is ``marshal``-ed.

    server → spawner    N + [socket]      fork a shepherd serving that socket
    server → shepherd   R (argv, env, cwd, limits, grace, max_line)   run a script
                        T  SIGTERM the run's processes    K  SIGKILL them
                        Q  quit (sent only when idle)     EOF: the server is gone
    shepherd → server   O [(is_stderr, lines)…]  lines, in the order they came: each item
                           the lines (newline-separated) of one stream that came together
                        E (code, left_behind, [(is_stderr, lines)…])  the run is over: its
                           exit code (negative: killed by that signal), whether processes
                           still held its output PIPE_GRACE after it exited (killed), the
                           last lines; nothing of the run is left and the shepherd is idle
                        F (errno, text)  the script could not start (idle again)
"""
