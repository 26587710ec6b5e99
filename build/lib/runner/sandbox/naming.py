"""Azure naming rules for the resources the sandbox serves (raise InvalidResourceName)."""

from __future__ import annotations

import re

from .errors import BadRequest

__all__ = ["check_network_name", "check_resource_group_name", "check_vm_name"]

# https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules
_RG = re.compile(r"[-\w._()]{1,90}")
_NETWORK = re.compile(r"[A-Za-z0-9](?:[-\w.]{0,78}[\w])?")
_VM_FORBIDDEN = set("\\/\"[]:|<>+=;,?*@&~!#$%^()'{}` \t")


def _invalid(name: str, kind: str, rule: str) -> BadRequest:
    return BadRequest(
        "InvalidResourceName",
        f"The {kind} name '{name}' is invalid. {rule}",
    )


def check_resource_group_name(name: str) -> None:
    """1–90 alphanumerics, underscores, parentheses, hyphens, periods; no trailing period."""
    if not _RG.fullmatch(name) or name.endswith("."):
        raise BadRequest(
            "InvalidResourceName",
            f"Resource group name '{name}' is invalid. It can include alphanumeric, underscore, "
            "parentheses, hyphen, period (except at end), and Unicode characters that match "
            "the allowed characters, and be 1 to 90 characters long.",
        )


def check_network_name(name: str, kind: str) -> None:
    """1–80 characters, start alphanumeric, end alphanumeric or underscore."""
    if not _NETWORK.fullmatch(name):
        raise _invalid(
            name,
            kind,
            "It must be 1 to 80 characters of alphanumerics, underscores, periods and hyphens, "
            "start with an alphanumeric and end with an alphanumeric or underscore.",
        )


def check_vm_name(name: str, *, windows: bool) -> None:
    """1–64 characters (15 for Windows), no special characters or leading underscore,
    no trailing period or hyphen, not only digits."""
    limit = 15 if windows else 64
    if (
        not 1 <= len(name) <= limit
        or any(c in _VM_FORBIDDEN for c in name)
        or name.startswith("_")
        or name.endswith((".", "-"))
        or name.isdigit()
    ):
        raise _invalid(
            name,
            "virtual machine",
            f"It must be 1 to {limit} characters long, contain no special characters, "
            "not start with an underscore and not end with a period or a hyphen.",
        )
