"""runner: a webhook-driven deployment runner.

Jobs live at URL paths; a POST starts a run whose output streams back live and is
recorded in a durable history. The job-facing API is re-exported from :mod:`runner.api`.
"""

__version__ = "0.1.0"
