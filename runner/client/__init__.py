"""The remote client: ``runner call``, and ``runs``, ``logs``, ``cancel``, ``jobs`` with
``--server``. It starts a run, follows it over SSE, survives any drop of the connection
(it resumes with ``Last-Event-ID``, so no line is missed or printed twice), and exits
with the run's code (:mod:`runner.client.exits`).

    connection.py  the server, its credentials, requests with retries, refusals in words
    follow.py      start a run, follow its events through drops, print them
    commands.py    the commands
"""
