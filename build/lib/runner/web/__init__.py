"""The HTTP face of the runner: job endpoints, the run API, streams."""
