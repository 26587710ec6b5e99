"""ARM emulation, driven end to end by the real async mgmt SDKs over HTTPS."""

from __future__ import annotations

import asyncio
import time

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity.aio import ManagedIdentityCredential

from runner.sandbox import Fault

LOCATION = "westeurope"


def _vm_body(nic_id: str) -> dict:
    return {
        "location": LOCATION,
        "properties": {
            "hardwareProfile": {"vmSize": "Standard_B1s"},
            "storageProfile": {
                "imageReference": {
                    "publisher": "Canonical",
                    "offer": "ubuntu-24_04-lts",
                    "sku": "server",
                    "version": "latest",
                }
            },
            "osProfile": {
                "computerName": "web1",
                "adminUsername": "azureuser",
                "adminPassword": "S3cret-Passw0rd!",
            },
            "networkProfile": {"networkInterfaces": [{"id": nic_id}]},
        },
    }


async def _network(c, rg: str) -> str:
    """Create vnet+subnet, NSG, public IP and NIC in ``rg``; return the NIC id."""
    vnet = await (
        await c.network.virtual_networks.begin_create_or_update(
            rg,
            "vnet1",
            {
                "location": LOCATION,
                "properties": {
                    "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
                    "subnets": [
                        {"name": "default", "properties": {"addressPrefix": "10.0.0.0/24"}}
                    ],
                },
            },
        )
    ).result()
    nsg = await (
        await c.network.network_security_groups.begin_create_or_update(
            rg, "nsg1", {"location": LOCATION}
        )
    ).result()
    pip = await (
        await c.network.public_ip_addresses.begin_create_or_update(
            rg, "pip1", {"location": LOCATION, "sku": {"name": "Standard"}}
        )
    ).result()
    assert pip.ip_address.startswith("20.")
    nic = await (
        await c.network.network_interfaces.begin_create_or_update(
            rg,
            "nic1",
            {
                "location": LOCATION,
                "properties": {
                    "networkSecurityGroup": {"id": nsg.id},
                    "ipConfigurations": [
                        {
                            "name": "ipconfig1",
                            "properties": {
                                "subnet": {"id": vnet.subnets[0].id},
                                "publicIPAddress": {"id": pip.id},
                            },
                        }
                    ],
                },
            },
        )
    ).result()
    assert nic.ip_configurations[0].private_ip_address == "10.0.0.4"
    return nic.id


def test_vm_lifecycle_with_network(sandbox, use_identity, clients_factory):
    """RG → vnet/subnet → NSG → public IP → NIC → VM, power actions, then deletes."""
    use_identity("imds")

    async def main():
        async with clients_factory(ManagedIdentityCredential()) as c:
            rg = await c.resource.resource_groups.create_or_update("rg1", {"location": LOCATION})
            assert rg.properties.provisioning_state == "Succeeded"
            assert await c.resource.resource_groups.check_existence("rg1")
            nic_id = await _network(c, "rg1")

            vm = await (
                await c.compute.virtual_machines.begin_create_or_update(
                    "rg1", "web1", _vm_body(nic_id)
                )
            ).result()
            assert vm.provisioning_state == "Succeeded"
            assert vm.os_profile.admin_password is None
            view = await c.compute.virtual_machines.instance_view("rg1", "web1")
            assert "PowerState/running" in [s.code for s in view.statuses]

            await (await c.compute.virtual_machines.begin_deallocate("rg1", "web1")).result()
            view = await c.compute.virtual_machines.instance_view("rg1", "web1")
            assert "PowerState/deallocated" in [s.code for s in view.statuses]
            await (await c.compute.virtual_machines.begin_start("rg1", "web1")).result()
            view = await c.compute.virtual_machines.instance_view("rg1", "web1")
            assert "PowerState/running" in [s.code for s in view.statuses]
            assert [v.name async for v in c.compute.virtual_machines.list("rg1")] == ["web1"]
            assert [v.name async for v in c.compute.virtual_machines.list_all()] == ["web1"]

            await (await c.compute.virtual_machines.begin_delete("rg1", "web1")).result()
            with pytest.raises(ResourceNotFoundError):
                await c.compute.virtual_machines.get("rg1", "web1")
            await (await c.resource.resource_groups.begin_delete("rg1")).result()
            assert not await c.resource.resource_groups.check_existence("rg1")
            assert [r async for r in c.network.virtual_networks.list_all()] == []

    asyncio.run(main())
    assert sandbox.world.resources == {}


def test_shared_credential_costs_one_token_request(sandbox, use_identity, clients_factory):
    """Three clients sharing one credential make many calls on a single token."""
    use_identity("imds")

    async def main():
        async with clients_factory(ManagedIdentityCredential()) as c:
            await c.resource.resource_groups.create_or_update("rg1", {"location": LOCATION})
            for _ in range(20):
                await c.resource.resource_groups.get("rg1")
                assert [v async for v in c.network.virtual_networks.list("rg1")] == []
                assert [v async for v in c.compute.virtual_machines.list("rg1")] == []

    asyncio.run(main())
    assert sandbox.controls.token_requests == {"imds": 1}
    assert sum(sandbox.controls.arm_calls.values()) == 61


def test_missing_role_raises_authorization_failed(sandbox, use_identity, clients_factory):
    """A Reader can read but a write fails with AuthorizationFailed naming who, what, where."""
    use_identity("imds")
    ident = sandbox.system_identity
    sandbox.revoke(ident.principal_id)
    sandbox.grant(ident.principal_id, "Reader")

    async def main():
        async with clients_factory(ManagedIdentityCredential(), retry_total=0) as c:
            assert [g async for g in c.resource.resource_groups.list()] == []
            with pytest.raises(HttpResponseError) as caught:
                await c.resource.resource_groups.create_or_update("rg1", {"location": LOCATION})
            return caught.value

    error = asyncio.run(main())
    assert error.status_code == 403
    assert error.error.code == "AuthorizationFailed"
    assert ident.principal_id in error.message
    assert ident.client_id in error.message
    assert "Microsoft.Resources/subscriptions/resourceGroups/write" in error.message
    assert f"/subscriptions/{sandbox.subscription_id}/resourceGroups/rg1" in error.message


def test_role_at_resource_group_scope_covers_only_that_group(
    sandbox, use_identity, clients_factory
):
    """A Contributor assignment on one resource group allows writes there and nowhere else."""
    use_identity("imds")
    ident = sandbox.system_identity

    async def main():
        async with clients_factory(ManagedIdentityCredential(), retry_total=0) as c:
            for name in ("mine", "other"):
                await c.resource.resource_groups.create_or_update(name, {"location": LOCATION})
            sandbox.revoke(ident.principal_id)
            sandbox.grant(
                ident.principal_id,
                "Contributor",
                f"/subscriptions/{sandbox.subscription_id}/resourceGroups/mine",
            )
            body = {"location": LOCATION}
            poller = await c.network.network_security_groups.begin_create_or_update(
                "mine", "n", body
            )
            await poller.result()
            with pytest.raises(HttpResponseError, match="AuthorizationFailed"):
                await c.network.network_security_groups.begin_create_or_update("other", "n", body)

    asyncio.run(main())


def test_throttled_call_is_retried_and_succeeds(sandbox, use_identity, clients_factory):
    """One injected 429 with Retry-After 1 is retried by the SDK, which then succeeds."""
    use_identity("imds")
    action = "Microsoft.Resources/subscriptions/resourceGroups/write"
    sandbox.controls.inject(Fault.throttle(action, times=1, retry_after=1))

    async def main():
        async with clients_factory(ManagedIdentityCredential()) as c:
            return await c.resource.resource_groups.create_or_update("rg1", {"location": LOCATION})

    started = time.monotonic()
    rg = asyncio.run(main())
    assert rg.name == "rg1"
    assert 1 <= time.monotonic() - started < 5
    assert sandbox.controls.arm_calls[action] == 2


def test_failed_provisioning_makes_poller_raise(sandbox, use_identity, clients_factory):
    """A provisioning fault ends the LRO Failed; the poller raises and the resource shows it."""
    use_identity("imds")
    sandbox.controls.inject(Fault.provision_failed("Microsoft.Network/networkSecurityGroups/write"))

    async def main():
        async with clients_factory(ManagedIdentityCredential(), retry_total=0) as c:
            await c.resource.resource_groups.create_or_update("rg1", {"location": LOCATION})
            poller = await c.network.network_security_groups.begin_create_or_update(
                "rg1", "nsg1", {"location": LOCATION}
            )
            with pytest.raises(HttpResponseError, match="ProvisioningFailed"):
                await poller.result()
            return await c.network.network_security_groups.get("rg1", "nsg1")

    assert asyncio.run(main()).provisioning_state == "Failed"


def test_invalid_names_are_refused(sandbox, use_identity, clients_factory):
    """Bad resource group and VM names fail with InvalidResourceName."""
    use_identity("imds")

    async def main():
        async with clients_factory(ManagedIdentityCredential(), retry_total=0) as c:
            with pytest.raises(HttpResponseError) as bad_rg:
                await c.resource.resource_groups.create_or_update("bad.", {"location": LOCATION})
            await c.resource.resource_groups.create_or_update("rg1", {"location": LOCATION})
            with pytest.raises(HttpResponseError) as bad_vm:
                await c.compute.virtual_machines.begin_create_or_update(
                    "rg1", "_web-", _vm_body("/nope")
                )
            return bad_rg.value, bad_vm.value

    bad_rg, bad_vm = asyncio.run(main())
    assert bad_rg.status_code == bad_vm.status_code == 400
    assert bad_rg.error.code == bad_vm.error.code == "InvalidResourceName"


def test_missing_parents_and_references_are_arm_errors(sandbox, use_identity, clients_factory):
    """Missing resource group, parent vnet or referenced subnet give ARM's error codes."""
    use_identity("imds")

    async def main():
        codes = []
        async with clients_factory(ManagedIdentityCredential(), retry_total=0) as c:
            with pytest.raises(HttpResponseError) as e:
                await c.network.network_security_groups.begin_create_or_update(
                    "ghost", "n", {"location": LOCATION}
                )
            codes.append(e.value.error.code)
            await c.resource.resource_groups.create_or_update("rg1", {"location": LOCATION})
            with pytest.raises(HttpResponseError) as e:
                await c.network.subnets.begin_create_or_update(
                    "rg1", "ghost", "s", {"properties": {"addressPrefix": "10.0.0.0/24"}}
                )
            codes.append(e.value.error.code)
            ghost_subnet = (
                f"/subscriptions/{sandbox.subscription_id}/resourceGroups/rg1/providers/"
                "Microsoft.Network/virtualNetworks/v/subnets/s"
            )
            with pytest.raises(HttpResponseError) as e:
                await c.network.network_interfaces.begin_create_or_update(
                    "rg1",
                    "nic",
                    {
                        "location": LOCATION,
                        "properties": {
                            "ipConfigurations": [
                                {"name": "c", "properties": {"subnet": {"id": ghost_subnet}}}
                            ]
                        },
                    },
                )
            codes.append(e.value.error.code)
            with pytest.raises(ResourceNotFoundError) as e:
                await c.compute.virtual_machines.get("rg1", "nothing")
            codes.append(e.value.error.code)
        return codes

    assert asyncio.run(main()) == [
        "ResourceGroupNotFound",
        "ParentResourceNotFound",
        "InvalidResourceReference",
        "ResourceNotFound",
    ]


def test_conflicts_in_use_subnet_and_immutable_property(sandbox, use_identity, clients_factory):
    """Deleting a used subnet and renaming a VM's admin user are refused."""
    use_identity("imds")

    async def main():
        async with clients_factory(ManagedIdentityCredential(), retry_total=0) as c:
            await c.resource.resource_groups.create_or_update("rg1", {"location": LOCATION})
            nic_id = await _network(c, "rg1")
            with pytest.raises(HttpResponseError) as in_use:
                await c.network.subnets.begin_delete("rg1", "vnet1", "default")
            await (
                await c.compute.virtual_machines.begin_create_or_update(
                    "rg1", "web1", _vm_body(nic_id)
                )
            ).result()
            changed = _vm_body(nic_id)
            changed["properties"]["osProfile"]["adminUsername"] = "root2"
            with pytest.raises(HttpResponseError) as immutable:
                await c.compute.virtual_machines.begin_create_or_update("rg1", "web1", changed)
            return in_use.value.error.code, immutable.value.error.code

    assert asyncio.run(main()) == ("InUseSubnetCannotBeDeleted", "PropertyChangeNotAllowed")


def test_latency_keeps_operation_in_progress_until_due(sandbox, use_identity, clients_factory):
    """With latency set, the resource shows Creating until the operation completes."""
    use_identity("imds")
    sandbox.controls.set_latency({"Microsoft.Network/*": 0.5})

    async def main():
        async with clients_factory(ManagedIdentityCredential()) as c:
            await c.resource.resource_groups.create_or_update("rg1", {"location": LOCATION})
            started = time.monotonic()
            poller = await c.network.network_security_groups.begin_create_or_update(
                "rg1", "nsg1", {"location": LOCATION}
            )
            early = await c.network.network_security_groups.get("rg1", "nsg1")
            done = await poller.result()
            return early.provisioning_state, done.provisioning_state, time.monotonic() - started

    early, done, elapsed = asyncio.run(main())
    assert (early, done) == ("Creating", "Succeeded")
    assert 0.5 <= elapsed < 2


def test_counters_record_calls_by_operation(sandbox, use_identity, clients_factory):
    """ARM calls are counted by action, polls separately."""
    use_identity("imds")

    async def main():
        async with clients_factory(ManagedIdentityCredential()) as c:
            await c.resource.resource_groups.create_or_update("rg1", {"location": LOCATION})
            poller = await c.network.network_security_groups.begin_create_or_update(
                "rg1", "nsg1", {"location": LOCATION}
            )
            await poller.result()

    asyncio.run(main())
    calls = sandbox.controls.arm_calls
    assert calls["Microsoft.Resources/subscriptions/resourceGroups/write"] == 1
    assert calls["Microsoft.Network/networkSecurityGroups/write"] == 1
    # One status poll, then the final GET of the resource.
    assert calls["poll"] == 1
    assert calls["Microsoft.Network/networkSecurityGroups/read"] == 1
