"""An emulated Azure on loopback: managed-identity endpoints and ARM, for real SDKs.

from runner.sandbox import Sandbox
sandbox = Sandbox(Path("state/sandbox"))
await sandbox.start()            # or: with sandbox.in_thread(): ...
os.environ.update(sandbox.env("imds"))
# SDK clients: base_url=sandbox.arm_url, connection_verify=str(sandbox.ca_path),
# credential_scopes=["https://management.azure.com/.default"]
# (long-running operations answer Retry-After: the SDK's default polling just works)
os.environ.update(sandbox.az_env("imds"))  # for azure-cli: see Sandbox.az_env
"""

from __future__ import annotations

from .controls import Controls, Fault, FaultKind, ImdsMode
from .errors import ArmError
from .server import IDENTITY_ENV_VARS, KINDS, Sandbox
from .tokens import TOKEN_LIFETIME, decode_unverified
from .world import ROLES, Identity, RoleAssignment

__all__ = [
    "IDENTITY_ENV_VARS",
    "KINDS",
    "ROLES",
    "TOKEN_LIFETIME",
    "ArmError",
    "Controls",
    "Fault",
    "FaultKind",
    "Identity",
    "ImdsMode",
    "RoleAssignment",
    "Sandbox",
    "decode_unverified",
]
