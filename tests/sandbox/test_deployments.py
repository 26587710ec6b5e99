"""Template deployments through the real SDK: ordering, outputs, operations, refusals."""

from __future__ import annotations

import asyncio
import time

import pytest
from azure.core.exceptions import HttpResponseError
from azure.identity.aio import ManagedIdentityCredential

LOCATION = "westeurope"

# Three dependent resources: a vnet and a public IP in parallel, then a NIC using both.
TEMPLATE = {
    "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
    "contentVersion": "1.0.0.0",
    "parameters": {
        "prefix": {"type": "string"},
        "location": {"type": "string", "defaultValue": "[resourceGroup().location]"},
        "secret": {"type": "securestring", "defaultValue": "hidden"},
    },
    "variables": {
        "vnetName": "[concat(parameters('prefix'), '-vnet')]",
        "subnetId": "[resourceId('Microsoft.Network/virtualNetworks/subnets', "
        "variables('vnetName'), 'default')]",
    },
    "resources": [
        {
            "type": "Microsoft.Network/virtualNetworks",
            "apiVersion": "2024-05-01",
            "name": "[variables('vnetName')]",
            "location": "[parameters('location')]",
            "properties": {
                "addressSpace": {"addressPrefixes": ["10.1.0.0/16"]},
                "subnets": [{"name": "default", "properties": {"addressPrefix": "10.1.0.0/24"}}],
            },
        },
        {
            "type": "Microsoft.Network/publicIPAddresses",
            "apiVersion": "2024-05-01",
            "name": "[format('{0}-ip', parameters('prefix'))]",
            "location": "[parameters('location')]",
            "sku": {"name": "Standard"},
            "properties": {"publicIPAllocationMethod": "Static"},
        },
        {
            "type": "Microsoft.Network/networkInterfaces",
            "apiVersion": "2024-05-01",
            "name": "[concat(parameters('prefix'), '-nic')]",
            "location": "[parameters('location')]",
            "dependsOn": [
                "[resourceId('Microsoft.Network/virtualNetworks', variables('vnetName'))]",
                "[concat(parameters('prefix'), '-ip')]",
            ],
            "properties": {
                "ipConfigurations": [
                    {
                        "name": "ipconfig1",
                        "properties": {
                            "subnet": {"id": "[variables('subnetId')]"},
                            "publicIPAddress": {
                                "id": "[resourceId('Microsoft.Network/publicIPAddresses', "
                                "concat(parameters('prefix'), '-ip'))]"
                            },
                        },
                    }
                ]
            },
        },
    ],
    "outputs": {
        "ip": {
            "type": "string",
            "value": "[reference(concat(parameters('prefix'), '-ip')).ipAddress]",
        },
        "nicId": {
            "type": "string",
            "value": "[resourceId('Microsoft.Network/networkInterfaces', "
            "concat(parameters('prefix'), '-nic'))]",
        },
    },
}


def _deployment(template=TEMPLATE, **parameters) -> dict:
    return {
        "properties": {
            "mode": "Incremental",
            "template": template,
            "parameters": {k: {"value": v} for k, v in parameters.items()},
        }
    }


def _run(sandbox, use_identity, clients_factory, body, *, name="d1", latency=None):
    use_identity("imds")
    if latency:
        sandbox.controls.set_latency(latency)

    async def main():
        async with clients_factory(ManagedIdentityCredential()) as c:
            await c.resource.resource_groups.create_or_update("rg", {"location": LOCATION})
            started = time.monotonic()
            poller = await c.deployments.deployments.begin_create_or_update("rg", name, body)
            result = await poller.result()
            took = time.monotonic() - started
            ops = [o async for o in c.deployments.deployment_operations.list("rg", name)]
            return result, ops, took

    return asyncio.run(main())


def test_three_dependent_resources_deploy_in_order_with_outputs(
    sandbox, use_identity, clients_factory
):
    """The vnet and IP start together, the NIC once both are done; outputs use reference()."""
    result, ops, took = _run(
        sandbox, use_identity, clients_factory, _deployment(prefix="web"),
        latency={"Microsoft.Network/*/write": 1},
    )  # fmt: skip
    props = result.properties
    assert props.provisioning_state == "Succeeded"
    assert props.outputs["ip"]["value"].startswith("20.")
    assert props.outputs["nicId"]["value"].endswith("/networkInterfaces/web-nic")
    assert props.parameters["secret"] == {"type": "SecureString"}  # never shown
    started = {o.properties.target_resource.resource_name: o.properties.timestamp for o in ops}
    assert set(started) == {"web-vnet", "web-ip", "web-nic"}
    assert all(o.properties.provisioning_state == "Succeeded" for o in ops)
    # Two 1 s steps on the critical path (the IP and vnet in parallel), polled at
    # Retry-After: not 3 s (in series), not 30 s (the SDK's default interval).
    assert 2 <= took < 2.8
    nic = sandbox.world.get(props.outputs["nicId"]["value"])
    assert nic is not None and nic.provisioning_state == "Succeeded"


def test_unknown_template_function_is_invalid_template(sandbox, use_identity, clients_factory):
    """A function ARM does not have is refused up front with 400 InvalidTemplate."""
    template = {**TEMPLATE, "outputs": {"x": {"type": "string", "value": "[frobnicate(1)]"}}}
    with pytest.raises(HttpResponseError) as info:
        _run(sandbox, use_identity, clients_factory, _deployment(template, prefix="web"))
    assert info.value.status_code == 400
    assert info.value.error.code == "InvalidTemplate"
    assert "frobnicate" in info.value.error.message
    assert not [r for r in sandbox.world.resources if "virtualnetworks" in r]


def test_unknown_resource_type_fails_the_deployment_with_details(
    sandbox, use_identity, clients_factory
):
    """A resource type the sandbox does not serve fails its operation and the deployment."""
    template = {
        "contentVersion": "1.0.0.0",
        "resources": [
            {"type": "Microsoft.Storage/storageAccounts", "apiVersion": "2023-01-01",
             "name": "store1", "location": LOCATION, "properties": {}},
        ],
    }  # fmt: skip
    with pytest.raises(HttpResponseError) as info:
        _run(sandbox, use_identity, clients_factory, _deployment(template))
    error = info.value.error
    assert error.code == "DeploymentFailed"
    assert error.details[0].code == "InvalidResourceType"


def test_missing_parameter_and_cycle_are_refused(sandbox, use_identity, clients_factory):
    """No value for a parameter, or resources depending on each other: 400 InvalidTemplate."""
    with pytest.raises(HttpResponseError) as missing:
        _run(sandbox, use_identity, clients_factory, _deployment())
    assert missing.value.error.code == "InvalidTemplate"
    assert "'prefix'" in missing.value.error.message
    vnet, ip = (dict(r) for r in TEMPLATE["resources"][:2])
    vnet["dependsOn"] = [ip["name"]]
    ip["dependsOn"] = [vnet["name"]]
    cyclic = {**TEMPLATE, "resources": [vnet, ip], "outputs": {}}
    with pytest.raises(HttpResponseError) as cycle:
        _run(sandbox, use_identity, clients_factory, _deployment(cyclic, prefix="x"), name="d2")
    assert "Circular dependency" in cycle.value.error.message


def test_validate_and_what_if_do_not_create_anything(sandbox, use_identity, clients_factory):
    """validate lists the resources; what-if says Create for each; nothing is made."""
    use_identity("imds")

    async def main():
        async with clients_factory(ManagedIdentityCredential()) as c:
            await c.resource.resource_groups.create_or_update("rg", {"location": LOCATION})
            body = _deployment(prefix="web")
            valid = await (await c.deployments.deployments.begin_validate("rg", "d", body)).result()
            what = await (await c.deployments.deployments.begin_what_if("rg", "d", body)).result()
            return valid, what

    valid, what = asyncio.run(main())
    assert len(valid.properties.validated_resources) == 3
    assert {c.change_type for c in what.changes} == {"Create"}
    assert [k for k in sandbox.world.resources if "/providers/" in k] == []


def test_a_failed_resource_fails_the_deployment_and_skips_its_dependents(
    sandbox, use_identity, clients_factory
):
    """A NIC whose subnet is missing fails; the deployment says DeploymentFailed."""
    template = {**TEMPLATE, "resources": [TEMPLATE["resources"][1], TEMPLATE["resources"][2]]}
    template["resources"][1] = {**template["resources"][1], "dependsOn": ["web-ip"]}
    with pytest.raises(HttpResponseError) as info:
        _run(sandbox, use_identity, clients_factory, _deployment(template, prefix="web"))
    assert info.value.error.code == "DeploymentFailed"
    assert info.value.error.details[0].code == "InvalidResourceReference"


def test_copy_condition_nested_resources_and_implicit_reference_order(
    sandbox, use_identity, clients_factory
):
    """copy makes N resources, condition false skips one, a nested rule joins its NSG."""
    template = {
        "contentVersion": "1.0.0.0",
        "parameters": {"count": {"type": "int", "defaultValue": 2}},
        "resources": [
            {"type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2024-05-01",
             "name": "[concat('ip', copyIndex(1))]", "location": LOCATION,
             "copy": {"name": "ips", "count": "[parameters('count')]"},
             "sku": {"name": "Standard"}, "properties": {}},
            {"type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2024-05-01",
             "name": "never", "location": LOCATION, "condition": "[equals(1, 2)]",
             "properties": {}},
            {"type": "Microsoft.Network/networkSecurityGroups", "apiVersion": "2024-05-01",
             "name": "nsg1", "location": LOCATION, "dependsOn": ["ips"], "properties": {},
             "resources": [
                 {"type": "securityRules", "apiVersion": "2024-05-01", "name": "ssh",
                  "dependsOn": ["nsg1"],
                  "properties": {"protocol": "Tcp", "sourcePortRange": "*",
                                 "destinationPortRange": "22", "sourceAddressPrefix": "*",
                                 "destinationAddressPrefix": "*", "access": "Allow",
                                 "priority": 100, "direction": "Inbound"}}]},
        ],
        "outputs": {
            "first": {"type": "string", "value": "[reference('ip1').ipAddress]"},
            "rules": {"type": "int",
                      "value": "[length(reference('nsg1').securityRules)]"},
        },
    }  # fmt: skip
    result, ops, _ = _run(sandbox, use_identity, clients_factory, _deployment(template))
    outputs = result.properties.outputs
    assert outputs["first"]["value"].startswith("20.")
    assert outputs["rules"]["value"] == 1
    names = sorted(o.properties.target_resource.resource_name for o in ops)
    assert names == ["ip1", "ip2", "never", "nsg1", "nsg1/ssh"]
    assert (
        sandbox.world.get(
            f"/subscriptions/{sandbox.subscription_id}/resourceGroups/rg/providers/"
            "Microsoft.Network/publicIPAddresses/never"
        )
        is None
    )
