"""How azure-cli meets the sandbox: cloud metadata, environment, configuration, commands.

``az cloud register --endpoint-resource-manager URL`` discovers every other endpoint from
``URL/metadata/endpoints`` (``metadata``); ``az login --identity`` finds the managed
identity endpoint from the environment (``environment``). An ``AZURE_CONFIG_DIR`` of the
sandbox's own keeps all of it away from the user's ``~/.azure``.

The guard variables make any request that would leave loopback fail at once: every HTTP
client az uses (requests, urllib, msal's session) sends non-loopback traffic to the proxy,
and nothing listens on 127.0.0.1:9.
"""

from __future__ import annotations

import configparser
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "CLOUD_NAME",
    "GUARD_ENV",
    "commands",
    "env_file",
    "metadata",
    "write_config",
]

CLOUD_NAME = "RunnerSandbox"
# Telemetry, survey prompts and dynamic extension installs would each reach the Internet.
GUARD_ENV = {
    "AZURE_CORE_COLLECT_TELEMETRY": "false",
    "AZURE_CORE_SURVEY_MESSAGE": "false",
    "AZURE_CORE_NO_COLOR": "true",
    "AZURE_EXTENSION_USE_DYNAMIC_INSTALL": "no",
    "AZURE_EXTENSION_RUN_AFTER_DYNAMIC_INSTALL": "false",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "NO_PROXY": "127.0.0.1,localhost",
}


def metadata(arm_url: str) -> dict[str, Any]:
    """``GET /metadata/endpoints``: ARM's cloud description, every endpoint the sandbox."""
    base = arm_url.rstrip("/") + "/"
    return {
        "name": CLOUD_NAME,
        "portal": base + "_sandbox",
        "authentication": {
            "loginEndpoint": base,
            "audiences": ["https://management.core.windows.net/", "https://management.azure.com/"],
            "tenant": "common",
            "identityProvider": "AAD",
        },
        "resourceManager": base,
        "sqlManagement": base,
        "gallery": base,
        "graph": base + "graph/",
        "graphAudience": base + "graph/",
        "microsoftGraphResourceId": base + "graph/",
        "activeDirectoryDataLake": base,
        "batch": base,
        "media": base,
        "vmImageAliasDoc": base + "metadata/vm-image-aliases.json",
        "suffixes": {
            "acrLoginServer": "azurecr.invalid",
            "keyVaultDns": "vault.invalid",
            "storage": "storage.invalid",
            "sqlServerHostname": "database.invalid",
        },
    }


def environment(identity_env: Mapping[str, str], ca: Path, config_dir: Path) -> dict[str, str]:
    """Everything ``az`` needs in its environment to use the sandbox and nothing else."""
    return {
        "AZURE_CONFIG_DIR": str(config_dir),
        # az (requests) trusts REQUESTS_CA_BUNDLE for ARM and for the metadata request.
        "REQUESTS_CA_BUNDLE": str(ca),
        **GUARD_ENV,
        **identity_env,
    }


def commands(arm_url: str) -> list[list[str]]:
    """The two az commands that register the sandbox's cloud and make it the active one."""
    return [
        [
            "az",
            "cloud",
            "register",
            "--name",
            CLOUD_NAME,
            "--endpoint-resource-manager",
            arm_url.rstrip("/") + "/",
        ],
        ["az", "cloud", "set", "--name", CLOUD_NAME],
    ]


def env_file(env: Mapping[str, str], arm_url: str) -> str:
    """A file to ``source`` in a shell: exports, then the cloud registration (once)."""
    lines = [
        "# azure-cli against the runner sandbox: `source` this file, then `az login --identity`.",
        "# Ports and secrets stay the same for this state directory across restarts.",
    ]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
    register, use = (shlex.join(c) for c in commands(arm_url))
    lines.append(f"az cloud show --name {CLOUD_NAME} >/dev/null 2>&1 || {register}")
    lines.append(use)
    return "\n".join(lines) + "\n"


def write_config(config_dir: Path, arm_url: str) -> None:
    """Write what ``az cloud register`` and ``az cloud set`` would, into ``config_dir``.

    Lets a script (a runner job) call ``az login --identity`` straight away.
    """
    config_dir.mkdir(parents=True, exist_ok=True)
    meta = metadata(arm_url)
    clouds = configparser.ConfigParser()
    clouds.read(config_dir / "clouds.config")
    if not clouds.has_section(CLOUD_NAME):
        clouds.add_section(CLOUD_NAME)
    endpoints = {
        "endpoint_resource_manager": meta["resourceManager"],
        "endpoint_management": meta["authentication"]["audiences"][0],
        "endpoint_active_directory_resource_id": meta["authentication"]["audiences"][0],
        "endpoint_active_directory": meta["authentication"]["loginEndpoint"],
        "endpoint_active_directory_graph_resource_id": meta["graphAudience"],
        "endpoint_microsoft_graph_resource_id": meta["microsoftGraphResourceId"],
        "endpoint_vm_image_alias_doc": meta["vmImageAliasDoc"],
        "endpoint_gallery": meta["gallery"],
        "endpoint_sql_management": meta["sqlManagement"],
        "profile": "latest",
    }
    for key, value in endpoints.items():
        clouds.set(CLOUD_NAME, key, value)
    with (config_dir / "clouds.config").open("w", encoding="utf-8") as f:
        clouds.write(f)
    config = configparser.ConfigParser()
    config.read(config_dir / "config")
    for section, key, value in (
        ("cloud", "name", CLOUD_NAME),
        ("core", "collect_telemetry", "no"),
        ("core", "survey_message", "no"),
    ):
        if not config.has_section(section):
            config.add_section(section)
        config.set(section, key, value)
    with (config_dir / "config").open("w", encoding="utf-8") as f:
        config.write(f)
