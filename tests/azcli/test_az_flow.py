"""The seed's own commands, unmodified, with the real azure-cli against the sandbox."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _rg_id(sandbox, rg: str) -> str:
    return f"/subscriptions/{sandbox.subscription_id}/resourceGroups/{rg}"


def test_cloud_register_discovers_every_endpoint_from_the_sandbox(az_factory, sandbox):
    """`az cloud register --endpoint-resource-manager` fills in the rest from /metadata."""
    az = az_factory()
    az.login()
    cloud = az("cloud", "show", "-o", "json").json()
    assert cloud["isActive"] is True
    for name in ("resourceManager", "activeDirectory", "microsoftGraphResourceId"):
        assert cloud["endpoints"][name].startswith(sandbox.arm_url), name
    assert cloud["endpoints"]["vmImageAliasDoc"] == (
        f"{sandbox.arm_url}/metadata/vm-image-aliases.json"
    )


def test_login_with_the_system_assigned_identity_lists_the_subscription(az_factory, sandbox):
    """`az login --identity` prints the sandbox subscription, signed in as the VM's identity."""
    accounts = az_factory().login().json()
    assert [a["id"] for a in accounts] == [sandbox.subscription_id]
    assert accounts[0]["user"] == {
        "assignedIdentityInfo": "MSI",
        "name": "systemAssignedIdentity",
        "type": "servicePrincipal",
    }


@pytest.mark.parametrize("flag", ["--client-id", "--object-id", "--resource-id"])
def test_login_with_a_user_assigned_identity(az_factory, sandbox, flag):
    """`az login --identity --client-id/--object-id/--resource-id` signs in as that identity."""
    ident = sandbox.user_identity
    value = {
        "--client-id": ident.client_id,
        "--object-id": ident.principal_id,
        "--resource-id": ident.resource_id,
    }[flag]
    az = az_factory()
    accounts = az.login(flag, value).json()
    assert accounts[0]["user"]["name"] == "userAssignedIdentity"
    assert accounts[0]["id"] == sandbox.subscription_id
    shown = az("account", "get-access-token", "--query", "accessToken", "-o", "tsv")
    from runner.sandbox import decode_unverified

    assert decode_unverified(shown.stdout.strip())["oid"] == ident.principal_id


@pytest.mark.parametrize("kind", ["appservice", "msi", "arc"])
def test_login_through_other_managed_identity_endpoints(az_factory, sandbox, kind):
    """App Service, MSI_ENDPOINT/MSI_SECRET and Azure Arc endpoints all sign az in."""
    accounts = az_factory(kind).login().json()
    assert accounts[0]["id"] == sandbox.subscription_id


def test_an_unknown_identity_on_app_service_says_why(az_factory):
    """An unknown client id shows App Service's message, not `None, None`."""
    az = az_factory("appservice")
    for command in az.sandbox.az_commands():
        az(*command[1:])
    failed = az("login", "--identity", "--client-id", "0" * 8 + "-0000-0000-0000-" + "0" * 12,
                check=False)  # fmt: skip
    assert failed.code != 0
    assert "No managed identity matches" in failed.stderr
    assert "None, None" not in failed.stderr


def test_vm_create_and_everyday_commands_print_what_azure_would(az_factory, sandbox):
    """group create, vm create, list -d, open-port, nsg rule, power, update, tags, delete."""
    az = az_factory()
    az.login()
    group = az("group", "create", "-g", "rg", "-l", "westeurope", "-o", "json").json()
    assert group["properties"]["provisioningState"] == "Succeeded"

    vm = az(
        "vm", "create", "-g", "rg", "-n", "vm1", "--image", "Ubuntu2204",
        "--admin-username", "azureuser", "--generate-ssh-keys", "-o", "json",
    ).json()  # fmt: skip
    assert vm["powerState"] == "VM running"
    assert vm["publicIpAddress"].startswith("20.")
    assert vm["privateIpAddress"] == "10.0.0.4"
    assert vm["macAddress"].startswith("00-0D-3A-")
    assert vm["id"] == f"{_rg_id(sandbox, 'rg')}/providers/Microsoft.Compute/virtualMachines/vm1"
    assert (az.home / ".ssh" / "id_rsa.pub").exists()

    listed = az("vm", "list", "-d", "-o", "json").json()
    assert [(v["name"], v["powerState"]) for v in listed] == [("vm1", "VM running")]
    assert listed[0]["publicIps"] == vm["publicIpAddress"]

    nsg = az("vm", "open-port", "-g", "rg", "-n", "vm1", "--port", "80", "-o", "json").json()
    assert [r["name"] for r in nsg["securityRules"]] == ["default-allow-ssh", "open-port-80"]
    rule = az(
        "network", "nsg", "rule", "create", "-g", "rg", "--nsg-name", "vm1NSG", "-n", "https",
        "--priority", "1010", "--destination-port-ranges", "443", "--access", "Allow",
        "--protocol", "Tcp", "-o", "json",
    ).json()  # fmt: skip
    assert (rule["priority"], rule["provisioningState"]) == (1010, "Succeeded")
    clash = az(
        "network", "nsg", "rule", "create", "-g", "rg", "--nsg-name", "vm1NSG", "-n", "again",
        "--priority", "1010", "--destination-port-ranges", "8443", check=False,
    )  # fmt: skip
    assert clash.code != 0 and "SecurityRuleConflict" in clash.stderr
    defaults = az("network", "nsg", "show", "-g", "rg", "-n", "vm1NSG", "-o", "json").json()
    assert len(defaults["defaultSecurityRules"]) == 6

    for command, state in (("stop", "VM stopped"), ("start", "VM running"),
                           ("deallocate", "VM deallocated")):  # fmt: skip
        az("vm", command, "-g", "rg", "-n", "vm1")
        view = az("vm", "get-instance-view", "-g", "rg", "-n", "vm1", "-o", "json").json()
        statuses = [s["displayStatus"] for s in view["instanceView"]["statuses"]]
        assert state in statuses, (command, statuses)

    updated = az("vm", "update", "-g", "rg", "-n", "vm1", "--set", "tags.env=test", "-o", "json")
    assert updated.json()["tags"] == {"env": "test"}
    tags = az(
        "tag", "update", "--resource-id", _rg_id(sandbox, "rg"), "--operation", "merge",
        "--tags", "team=web", "-o", "json",
    ).json()  # fmt: skip
    assert tags["properties"]["tags"] == {"team": "web"}
    assert az("group", "show", "-g", "rg", "-o", "json").json()["tags"] == {"team": "web"}

    az("group", "delete", "-g", "rg", "--yes")
    assert az("group", "exists", "-g", "rg").stdout.strip() == "false"


def test_role_assignments_follow_the_role_checks(az_factory, sandbox):
    """A Contributor may not assign roles; once granted User Access Administrator, it can."""
    az = az_factory()
    az.login()
    az("group", "create", "-g", "shared", "-l", "westeurope", "-o", "none")
    scope = _rg_id(sandbox, "shared")
    reader = sandbox.user_identity.principal_id
    args = ("role", "assignment", "create", "--assignee", reader, "--role", "Reader",
            "--scope", scope, "-o", "json")  # fmt: skip
    refused = az(*args, check=False)
    assert refused.code != 0
    assert "AuthorizationFailed" in refused.stderr
    assert "Microsoft.Authorization/roleAssignments/write" in refused.stderr

    sandbox.grant(sandbox.system_identity.principal_id, "User Access Administrator")
    created = az(*args).json()
    assert created["principalId"] == reader
    assert created["roleDefinitionId"].endswith("acdd72a7-3385-48ef-bd42-f606fba81ae7")

    listed = az("role", "assignment", "list", "--scope", scope, "-o", "json").json()
    assert [(a["roleDefinitionName"], a["principalId"]) for a in listed] == [("Reader", reader)]
    assert listed[0]["principalName"] == sandbox.user_identity.client_id

    az("role", "assignment", "delete", "--assignee", reader, "--role", "Reader", "--scope", scope)
    assert az("role", "assignment", "list", "--scope", scope, "-o", "json").json() == []


def test_vm_create_with_a_password_and_a_bad_size_fails_like_azure(az_factory):
    """--admin-password works; an unknown size fails the deployment with ARM's message."""
    az = az_factory()
    az.login()
    az("group", "create", "-g", "rg", "-l", "westeurope", "-o", "none")
    vm = az(
        "vm", "create", "-g", "rg", "-n", "win1", "--image", "Win2022Datacenter",
        "--admin-username", "azureuser", "--admin-password", "S3cret-Passw0rd!", "-o", "json",
    ).json()  # fmt: skip
    assert vm["powerState"] == "VM running"
    bad = az(
        "vm", "create", "-g", "rg", "-n", "vm2", "--image", "Ubuntu2204", "--size",
        "Standard_Z99", "--admin-username", "azureuser", "--generate-ssh-keys", check=False,
    )  # fmt: skip
    assert bad.code != 0
    assert "The requested VM size Standard_Z99 is not available" in bad.stderr
