"""Chat commands: Slack slash commands and Teams outgoing webhooks start runs, answer
within the platform's seconds, and report back through the outbox.

    POST /_chat/slack  ─► verify (signing secret) ─► command.parse ─► ChatStarter ─► Runs
    POST /_chat/teams  ─► verify (security token) ─┘   (allow lists, no secrets, admission)
    run ends ─► SlackReplies / TeamsReplies compose notices ─► the outbox delivers them
"""

from runner.chat.setup import Chat, load

__all__ = ["Chat", "load"]
