"""Secrets by reference: where a secret lives, never its value, in the configuration.

    env:NAME                 an environment variable of the runner's process
    file:PATH                a file (a mounted Kubernetes or systemd credential)
    keyvault:https://<vault>.vault.azure.net/secrets/<name>[/<version>]
                             Azure Key Vault, read with the process's managed identity

:class:`SecretSources` resolves them for the whole process (one per runtime:
``runtime.secrets``, also ``Runs.secrets``): ``watch(spec)`` before the runtime starts gives
a :class:`Watched` whose ``current`` is the value now (read it per use: Key Vault
references are kept fresh in the background); ``await read(spec)`` serves a use that comes
later. :func:`check_source` checks a source's form while settings are parsed.
:class:`Secret` is a value that never shows itself.
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
    check_source,
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
    "check_source",
    "is_reference",
    "parse_reference",
    "read_local",
]
