"""The web page: catalogue, forms from each job's JSON Schema, live logs, history.

Plain ES modules and one style sheet in ``static/`` (no build step, no dependency),
served under the same auth as the API, with a strict Content-Security-Policy (no inline
script) and CSRF tokens on its POSTs (:mod:`runner.web.ui.csrf`).
"""

from runner.web.ui.csrf import CrossSiteGuard, Tokens
from runner.web.ui.pages import routes

__all__ = ["CrossSiteGuard", "Tokens", "routes"]
