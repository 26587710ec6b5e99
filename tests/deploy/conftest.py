"""The deploy assets' tests reuse the Azure rig (a runner on the sandbox) and the client's
cutting proxy."""

from tests.azure.conftest import azure_rig
from tests.client.conftest import proxy

__all__ = ["azure_rig", "proxy"]
