"""What real clients do beyond the built-in jobs: updates, tags, rules, validation, discovery."""

from __future__ import annotations

import asyncio
import ssl
import time

import httpx
import pytest
from azure.core.exceptions import HttpResponseError
from azure.identity.aio import ManagedIdentityCredential
from azure.mgmt.compute.models import HardwareProfile, VirtualMachineUpdate
from azure.mgmt.network.models import NetworkSecurityGroup, SecurityRule

from .test_arm import LOCATION, _network, _vm_body


def _creds(use_identity):
    use_identity("imds")
    return ManagedIdentityCredential()


async def _vm(c) -> None:
    await c.resource.resource_groups.create_or_update("rg", {"location": LOCATION})
    nic_id = await _network(c, "rg")
    poller = await c.compute.virtual_machines.begin_create_or_update("rg", "web1", _vm_body(nic_id))
    await poller.result()


def test_vm_begin_update_and_update_tags_on_network_resources(use_identity, clients_factory):
    """VirtualMachines_Update merges a change; UpdateTags replaces a resource's tags."""

    async def main():
        async with clients_factory(_creds(use_identity)) as c:
            await _vm(c)
            change = VirtualMachineUpdate(
                tags={"env": "test"}, hardware_profile=HardwareProfile(vm_size="Standard_B2s")
            )
            vm = await (
                await c.compute.virtual_machines.begin_update("rg", "web1", change)
            ).result()
            nic = await c.network.network_interfaces.update_tags("rg", "nic1", {"tags": {"a": "1"}})
            pip = await c.network.public_ip_addresses.update_tags(
                "rg", "pip1", {"tags": {"b": "2"}}
            )
            rg = await c.resource.resource_groups.update("rg", {"tags": {"team": "web"}})
            return vm, nic, pip, rg

    vm, nic, pip, rg = asyncio.run(main())
    assert vm.tags == {"env": "test"}
    assert vm.hardware_profile.vm_size == "Standard_B2s"
    assert vm.os_profile.admin_username == "azureuser"  # kept: the update merged
    assert (nic.tags, pip.tags, rg.tags) == ({"a": "1"}, {"b": "2"}, {"team": "web"})


def test_security_rules_as_children_and_inline_with_defaults(use_identity, clients_factory):
    """A rule made on its own shows in the NSG; a clashing priority is SecurityRuleConflict."""

    async def main():
        async with clients_factory(_creds(use_identity)) as c:
            await c.resource.resource_groups.create_or_update("rg", {"location": LOCATION})
            rule = {"protocol": "Tcp", "source_port_range": "*", "destination_port_range": "443",
                    "source_address_prefix": "*", "destination_address_prefix": "*",
                    "access": "Allow", "priority": 300, "direction": "Inbound"}  # fmt: skip
            ssh = SecurityRule(
                name="ssh",
                **{**rule, "destination_port_range": "22"},
            )
            ssh.priority = 200
            await (
                await c.network.network_security_groups.begin_create_or_update(
                    "rg", "nsg1", NetworkSecurityGroup(location=LOCATION, security_rules=[ssh])
                )
            ).result()
            made = await (
                await c.network.security_rules.begin_create_or_update(
                    "rg", "nsg1", "https", SecurityRule(**rule)
                )
            ).result()
            with pytest.raises(HttpResponseError) as clash:
                await c.network.security_rules.begin_create_or_update(
                    "rg",
                    "nsg1",
                    "again",
                    SecurityRule(**{**rule, "destination_port_range": "8443"}),
                )
            nsg = await c.network.network_security_groups.get("rg", "nsg1")
            listed = [r.name async for r in c.network.security_rules.list("rg", "nsg1")]
            return made, clash.value, nsg, listed

    made, clash, nsg, listed = asyncio.run(main())
    assert (made.priority, made.provisioning_state) == (300, "Succeeded")
    assert clash.error.code == "SecurityRuleConflict"
    assert [r.name for r in nsg.security_rules] == listed == ["ssh", "https"]
    assert [r.name for r in nsg.default_security_rules] == [
        "AllowVnetInBound", "AllowAzureLoadBalancerInBound", "DenyAllInBound",
        "AllowVnetOutBound", "AllowInternetOutBound", "DenyAllOutBound",
    ]  # fmt: skip


def test_bad_api_version_is_refused_with_the_supported_list(use_identity, clients_factory):
    """An api-version the provider does not offer: 400 InvalidApiVersionParameter."""

    async def main():
        async with clients_factory(_creds(use_identity), api_version="1999-01-01") as c:
            with pytest.raises(HttpResponseError) as info:
                await c.resource.resource_groups.create_or_update("rg", {"location": LOCATION})
            return info.value

    error = asyncio.run(main())
    assert error.status_code == 400
    assert error.error.code == "InvalidApiVersionParameter"
    assert "The api-version '1999-01-01' is invalid" in error.error.message
    assert "2024-11-01" in error.error.message


@pytest.mark.parametrize(
    ("what", "code"),
    [
        ("group", "LocationNotAvailableForResourceGroup"),
        ("vm", "LocationNotAvailableForResourceType"),
        ("size", "InvalidParameter"),
    ],
)
def test_bad_locations_and_sizes_are_refused(use_identity, clients_factory, what, code):
    """A group in nowhere-land, a VM in mars, size Standard_Z99: ARM's 400s."""

    async def main():
        async with clients_factory(_creds(use_identity)) as c:
            if what == "group":
                await c.resource.resource_groups.create_or_update("rg", {"location": "nowhere"})
            await c.resource.resource_groups.create_or_update("rg", {"location": LOCATION})
            nic_id = await _network(c, "rg")
            body = _vm_body(nic_id)
            if what == "vm":
                body["location"] = "mars"
            else:
                body["properties"]["hardwareProfile"]["vmSize"] = "Standard_Z99"
            await c.compute.virtual_machines.begin_create_or_update("rg", "web1", body)

    with pytest.raises(HttpResponseError) as info:
        asyncio.run(main())
    assert info.value.status_code == 400
    assert info.value.error.code == code


def test_retry_after_paces_polling_without_any_override(sandbox, use_identity, clients_factory):
    """With 2 s latency and the SDK's 30 s default interval, a stop takes ~2 s, not 30."""
    sandbox.controls.set_latency({"Microsoft.Compute/virtualMachines/powerOff": 2})

    async def main():
        async with clients_factory(_creds(use_identity), polling_interval=30) as c:
            await _vm(c)
            started = time.monotonic()
            await (await c.compute.virtual_machines.begin_power_off("rg", "web1")).result()
            return time.monotonic() - started

    assert 2 <= asyncio.run(main()) < 3


def test_discovery_images_sizes_skus_locations_providers(use_identity, clients_factory):
    """What clients look up before acting comes back in the SDK models' shape."""

    async def main():
        async with clients_factory(_creds(use_identity)) as c:
            images = c.compute.virtual_machine_images
            versions = await images.list(
                LOCATION, "Canonical", "0001-com-ubuntu-server-jammy", "22_04-lts-gen2"
            )
            image = await images.get(
                LOCATION, "Canonical", "0001-com-ubuntu-server-jammy", "22_04-lts-gen2",
                versions[0].name,
            )  # fmt: skip
            sizes = [s.name async for s in c.compute.virtual_machine_sizes.list(LOCATION)]
            skus = [
                s async for s in c.compute.resource_skus.list(filter=f"location eq '{LOCATION}'")
            ]
            provider = await c.resource.providers.get("Microsoft.Compute")
            return versions, image, sizes, skus, provider

    versions, image, sizes, skus, provider = asyncio.run(main())
    assert len(versions) == 1
    assert image.hyper_v_generation == "V2"
    assert image.os_disk_image.operating_system == "Linux"
    assert "Standard_B1s" in sizes and "Standard_D2s_v5" in sizes
    assert {s.locations[0] for s in skus} == {LOCATION}
    vms = next(t for t in provider.resource_types if t.resource_type == "virtualMachines")
    assert "West Europe" in vms.locations and "2024-11-01" in vms.api_versions


def test_cloud_metadata_is_public_and_points_at_the_sandbox(sandbox):
    """GET /metadata/endpoints needs no token and names the sandbox for every endpoint."""
    verify = ssl.create_default_context(cafile=str(sandbox.ca_path))
    with httpx.Client(base_url=sandbox.arm_url, verify=verify) as client:
        meta = client.get("/metadata/endpoints", params={"api-version": "2022-09-01"}).json()
        aliases = client.get("/metadata/vm-image-aliases.json").json()
    assert meta["resourceManager"] == f"{sandbox.arm_url}/"
    assert meta["authentication"]["loginEndpoint"] == f"{sandbox.arm_url}/"
    linux = aliases["outputs"]["aliases"]["value"]["Linux"]
    assert linux["Ubuntu2204"]["offer"] == "0001-com-ubuntu-server-jammy"


def test_empty_path_segments_are_ignored_like_arm(sandbox, use_identity, clients_factory):
    """az's `providers/Microsoft.Compute//virtualMachines` lists VMs instead of a 404."""

    async def main():
        async with clients_factory(_creds(use_identity)) as c:
            await c.resource.resource_groups.create_or_update("rg", {"location": LOCATION})
            credential = ManagedIdentityCredential()
            async with credential:
                token = await credential.get_token("https://management.azure.com/.default")
            return token.token

    token = asyncio.run(main())
    verify = ssl.create_default_context(cafile=str(sandbox.ca_path))
    with httpx.Client(base_url=sandbox.arm_url, verify=verify) as client:
        response = client.get(
            f"/subscriptions/{sandbox.subscription_id}/resourceGroups/rg/providers/"
            "Microsoft.Compute//virtualMachines",
            params={"api-version": "2024-11-01"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200
    assert response.json() == {"value": []}


def test_every_image_alias_of_the_built_in_jobs_is_in_the_catalogue():
    """vm/create's aliases resolve to images the sandbox serves (az and the SDK agree)."""
    from runner.azure.images import ALIASES
    from runner.sandbox import catalog

    for alias, ref in ALIASES.items():
        image = catalog.find_image(ref.publisher, ref.offer, ref.sku)
        assert image is not None, alias
        assert image.alias == alias
