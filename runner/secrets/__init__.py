"""Secrets by reference: where a secret lives, never its value, in the configuration.

    env:NAME                 an environment variable of the runner's process
    file:PATH                a file (a mounted Kubernetes or systemd credential)
    keyvault:https://<vault>.vault.azure.net/secrets/<name>[/<version>]
                             Azure Key Vault, read with the process's managed identity

:class:`SecretSources` resolves them for the whole process (one per runtime:
``runtime.secrets``): ``watch(spec)`` gives a :class:`Watched` whose ``current`` is the
value now, Key Vault references kept fresh in the background. :class:`Secret` is a value
that never shows itself.
"""

from runner.secrets.local import read_local
from runner.secrets.reference import VaultRef, is_reference, parse_reference
from runner.secrets.sources import (
    SecretObserver,
    SecretSources,
    SecretUnavailable,
    VaultReader,
    VaultSecret,
    Watched,
)
from runner.secrets.value import Secret

__all__ = [
    "Secret",
    "SecretObserver",
    "SecretSources",
    "SecretUnavailable",
    "VaultReader",
    "VaultRef",
    "VaultSecret",
    "Watched",
    "is_reference",
    "parse_reference",
    "read_local",
]
