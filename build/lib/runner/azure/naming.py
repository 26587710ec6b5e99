"""Azure naming rules as job parameter types: a bad name is refused (422) before a run exists.

A job declares ``rg: ResourceGroupName`` and the runner checks it with every other parameter,
listing each problem in one answer, so a typo costs no ARM call and no half-built deployment.
Each type carries a ``pattern`` (shown by ``GET /<job>``) and a check that says in words what
is wrong; the rules are those ``az`` enforces and ARM validates (the sandbox applies the same
ones in ``runner/sandbox/naming.py``).
https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules
"""

from __future__ import annotations

import base64
import binascii
import re
import string
from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError

from runner.params import Param, Secret

__all__ = [
    "AdminPassword",
    "AdminUsername",
    "Location",
    "ResourceGroupName",
    "SshPublicKey",
    "Tags",
    "VmName",
    "VmSize",
    "parse_tags",
]


def _checked(check: Callable[[str], str | None]) -> BeforeValidator:
    """Run ``check`` before the pattern so the user reads a sentence, not a regex."""

    def validate(value: object) -> object:
        if isinstance(value, str):
            problem = check(value)
            if problem is not None:
                raise PydanticCustomError("azure_rule", "{problem}", {"problem": problem})
        return value

    return BeforeValidator(validate)


# -- resource group ---------------------------------------------------------------------
RG_PATTERN = r"^[-\w.()]{0,89}[-\w()]$"


def _check_rg(name: str) -> str | None:
    if not re.fullmatch(r"[-\w.()]{1,90}", name):
        return (
            "a resource group name is 1 to 90 letters, digits, underscores, hyphens, "
            "periods and parentheses"
        )
    if name.endswith("."):
        return "a resource group name cannot end with a period"
    return None


ResourceGroupName = Annotated[
    str,
    Param(
        pattern=RG_PATTERN,
        description="Resource group: 1-90 letters, digits, _ - . ( ), not ending in a period",
    ),
    _checked(_check_rg),
]

# -- virtual machine ----------------------------------------------------------------------
# Linux rules as `az vm create` applies them; a hostname cannot start with a hyphen or period
# either, so the name must start with a letter or digit. Windows (15 characters) is checked
# by vm/create once the image is known.
VM_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,62}[A-Za-z0-9])?$"


def _check_vm(name: str) -> str | None:
    if not 1 <= len(name) <= 64:
        return "a VM name is 1 to 64 characters long"
    if not re.fullmatch(r"[A-Za-z0-9.-]+", name):
        return "a VM name may only contain letters, digits, hyphens and periods"
    if not name[0].isalnum():
        return "a VM name must start with a letter or a digit"
    if name.endswith((".", "-")):
        return "a VM name cannot end with a period or a hyphen"
    if name.isdigit():
        return "a VM name cannot be only digits"
    return None


VmName = Annotated[
    str,
    Param(
        pattern=VM_PATTERN,
        description="VM name: 1-64 letters, digits, - and ., starting with a letter or digit, "
        "not ending in - or . (15 at most for Windows)",
    ),
    _checked(_check_vm),
]

# -- admin user -----------------------------------------------------------------------------
# The names `az vm create` refuses (azure-cli compute/_validators.py), and Linux system users.
RESERVED_USERNAMES = frozenset(
    (
        "administrator", "admin", "user", "user1", "test", "user2", "test1", "user3", "admin1",
        "1", "123", "a", "actuser", "adm", "admin2", "aspnet", "backup", "console", "david",
        "guest", "john", "owner", "root", "server", "sql", "support", "support_388945a0", "sys",
        "test2", "test3", "user4", "user5", "bin", "daemon", "nobody",
    )
)  # fmt: skip
USERNAME_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"


def _check_username(name: str) -> str | None:
    if not 1 <= len(name) <= 32:
        return "an admin username is 1 to 32 characters long"
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
        return (
            "an admin username starts with a lowercase letter and holds only lowercase "
            "letters, digits, _ and -"
        )
    if name in RESERVED_USERNAMES:
        return f"{name!r} is a reserved username on Azure VMs; choose another, e.g. azureuser"
    return None


AdminUsername = Annotated[
    str,
    Param(
        pattern=USERNAME_PATTERN,
        description="Admin username: 1-32 lowercase letters, digits, _ and -, starting with a "
        "letter; not a reserved name (admin, root, administrator, …)",
    ),
    _checked(_check_username),
]

# -- location, size, tags ---------------------------------------------------------------------
LOCATION_PATTERN = r"^[a-z][a-z0-9]{1,39}$"


def _normalise_location(value: object) -> object:
    # Accept the display name too ("West Europe"), as ARM does.
    return value.replace(" ", "").lower() if isinstance(value, str) else value


def _check_location(name: str) -> str | None:
    if not re.fullmatch(LOCATION_PATTERN, name):
        return "a location is an Azure region name such as westeurope or eastus2"
    return None


# Validators run right to left: normalise first, then check.
Location = Annotated[
    str,
    Param(pattern=LOCATION_PATTERN, description="Azure region, e.g. westeurope, eastus2"),
    _checked(_check_location),
    BeforeValidator(_normalise_location),
]

SIZE_PATTERN = r"^(Standard|Basic)_[A-Za-z0-9_]{1,60}$"


def _check_size(name: str) -> str | None:
    if not re.fullmatch(SIZE_PATTERN, name):
        return "a VM size looks like Standard_B2s or Standard_D4s_v5"
    return None


VmSize = Annotated[
    str,
    Param(pattern=SIZE_PATTERN, description="VM size, e.g. Standard_B2s, Standard_D4s_v5"),
    _checked(_check_size),
]

TAGS_PATTERN = r"^(?:[^=,]+=[^=,]*(?:,[^=,]+=[^=,]*)*)?$"
_TAG_KEY_FORBIDDEN = set("<>%&\\?/")


def _check_tags(text: str) -> str | None:
    rule = (
        "tags are key=value pairs separated by commas (at most 50; keys up to 512 "
        "characters without < > % & \\ ? /, values up to 256)"
    )
    if not re.fullmatch(TAGS_PATTERN, text):
        return rule
    pairs = parse_tags(text)
    if len(pairs) > 50 or any(
        not key or len(key) > 512 or _TAG_KEY_FORBIDDEN & set(key) or len(value) > 256
        for key, value in pairs.items()
    ):
        return rule
    return None


Tags = Annotated[
    str,
    Param(pattern=TAGS_PATTERN, description="Tags as key=value pairs: env=dev,owner=ops"),
    _checked(_check_tags),
]


def parse_tags(text: str) -> dict[str, str]:
    """``env=dev,owner=ops`` → ``{"env": "dev", "owner": "ops"}`` (already validated)."""
    pairs = (item.partition("=") for item in text.split(",") if item)
    return {key.strip(): value.strip() for key, _, value in pairs}


# -- SSH key ----------------------------------------------------------------------------------
SSH_KEY_TYPES = ("ssh-rsa", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384")
SSH_PATTERN = r"^(ssh-rsa|ssh-ed25519|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384) [A-Za-z0-9+/]+=*"


def _check_ssh_key(text: str) -> str | None:
    kind, _, rest = text.strip().partition(" ")
    blob = rest.split(" ", 1)[0]
    hint = (
        "an SSH public key is one line like 'ssh-ed25519 AAAAC3Nza… me@laptop' (the .pub "
        "file); in a query string, encode + as %2B"
    )
    if kind not in SSH_KEY_TYPES or not blob:
        return hint
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        return hint
    # The blob starts with its own type as a length-prefixed string (RFC 4253 §6.6).
    size = int.from_bytes(raw[:4], "big")
    if raw[4 : 4 + size] != kind.encode():
        return f"the key's data is not an {kind} key; paste the whole .pub line"
    return None


SshPublicKey = Annotated[
    str,
    Param(
        pattern=SSH_PATTERN,
        description="SSH public key (a .pub line: ssh-ed25519 / ssh-rsa / ecdsa-sha2-…)",
    ),
    _checked(_check_ssh_key),
]

# -- admin password ----------------------------------------------------------------------------
# Passwords Azure refuses outright, whatever their complexity.
WEAK_PASSWORDS = frozenset(
    p.lower()
    for p in (
        "abc@123", "iloveyou!", "P@$$w0rd", "P@ssw0rd", "P@ssword123", "Pa$$word",
        "pass@word1", "Password!", "Password1", "Password22",
    )
)  # fmt: skip


def password_problem(password: str) -> str | None:
    """Why Azure would refuse ``password`` as a VM admin password, or None.

    The answer never contains the password.
    """
    if not 12 <= len(password) <= 123:
        return "the admin password must be 12 to 123 characters long"
    classes = [
        any(c.islower() for c in password),
        any(c.isupper() for c in password),
        any(c.isdigit() for c in password),
        any(c in string.punctuation or c == " " for c in password),
    ]
    if sum(classes) < 3:
        return (
            "the admin password needs 3 of: a lowercase letter, an uppercase letter, a digit, "
            "a special character"
        )
    if password.lower() in WEAK_PASSWORDS:
        return "the admin password is on Azure's list of disallowed passwords"
    return None


def _check_password(value: Secret) -> Secret:
    problem = password_problem(value.get_secret_value())
    if problem is not None:
        raise PydanticCustomError("azure_password", "{problem}", {"problem": problem})
    return value


AdminPassword = Annotated[
    Secret,
    Param(description="Admin password (secret): 12-123 characters, 3 of 4 character classes"),
    AfterValidator(_check_password),
]
