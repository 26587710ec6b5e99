"""Azure for jobs: one managed-identity credential per process, shared ARM clients.

A job asks ``az = await ctx.azure()`` and gets :class:`~runner.azure.services.Azure`:
the credential, ready async clients (``az.resources``, ``az.network``, ``az.compute``)
pointed at the configured endpoint and CA, the subscription and the default location.
"""

from runner.azure.services import Azure, AzureExtension

__all__ = ["Azure", "AzureExtension"]
