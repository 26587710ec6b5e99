"""The parts of ``scripts/bench.py``: figures, a raw HTTP client, load generators, the
server under test. Imported by the scripts in this folder (their folder is on sys.path)."""
