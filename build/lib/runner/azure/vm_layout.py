"""What vm/create makes for one VM, by deterministic name, and the ARM bodies it sends.

Names derive from the VM name only (``vm1-vnet``, ``vm1-nsg``, ``vm1-ip``, ``vm1-nic``,
``vm1-osdisk``), so running vm/create again after a failure PUTs the same resources again
and converges, and vm/delete finds them without any state of its own. Each resource is
tagged ``runner-vm=<vmname>``: vm/delete removes only what carries that tag.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runner.azure.images import ImageRef

__all__ = ["OWNER_TAG", "VmLayout"]

OWNER_TAG = "runner-vm"
VNET_PREFIX = "10.0.0.0/16"
SUBNET_PREFIX = "10.0.0.0/24"


@dataclass(frozen=True)
class VmLayout:
    """The resources of one VM made by vm/create."""

    vm: str

    @property
    def vnet(self) -> str:
        return f"{self.vm}-vnet"

    @property
    def subnet(self) -> str:
        return f"{self.vm}-subnet"

    @property
    def nsg(self) -> str:
        return f"{self.vm}-nsg"

    @property
    def ip(self) -> str:
        return f"{self.vm}-ip"

    @property
    def nic(self) -> str:
        return f"{self.vm}-nic"

    @property
    def osdisk(self) -> str:
        return f"{self.vm}-osdisk"

    @property
    def tags(self) -> dict[str, str]:
        return {OWNER_TAG: self.vm}

    def owns(self, tags: dict[str, str] | None) -> bool:
        """Whether a resource with these tags was made by vm/create for this VM."""
        return (tags or {}).get(OWNER_TAG) == self.vm

    # -- labels, as progress lines show them -------------------------------------------------
    def labels(self, port: int = 22) -> dict[str, str]:
        return {
            "vnet": f"virtual network {self.vnet} (subnet {self.subnet})",
            "nsg": f"network security group {self.nsg} (allow TCP {port} in)",
            "ip": f"public IP address {self.ip} (Standard, static)",
            "nic": f"network interface {self.nic}",
            "vm": f"virtual machine {self.vm}",
        }

    # -- bodies ---------------------------------------------------------------------------------
    def vnet_body(self, location: str) -> dict[str, Any]:
        return {
            "location": location,
            "tags": self.tags,
            "properties": {
                "addressSpace": {"addressPrefixes": [VNET_PREFIX]},
                "subnets": [{"name": self.subnet, "properties": {"addressPrefix": SUBNET_PREFIX}}],
            },
        }

    def nsg_body(self, location: str, port: int) -> dict[str, Any]:
        name = "default-allow-rdp" if port == 3389 else "default-allow-ssh"
        return {
            "location": location,
            "tags": self.tags,
            "properties": {
                "securityRules": [
                    {
                        "name": name,
                        "properties": {
                            "priority": 1000,
                            "protocol": "Tcp",
                            "access": "Allow",
                            "direction": "Inbound",
                            "sourceAddressPrefix": "*",
                            "sourcePortRange": "*",
                            "destinationAddressPrefix": "*",
                            "destinationPortRange": str(port),
                        },
                    }
                ]
            },
        }

    def ip_body(self, location: str) -> dict[str, Any]:
        return {
            "location": location,
            "tags": self.tags,
            "sku": {"name": "Standard", "tier": "Regional"},
            "properties": {
                "publicIPAllocationMethod": "Static",
                "publicIPAddressVersion": "IPv4",
            },
        }

    def nic_body(self, location: str, subnet_id: str, nsg_id: str, ip_id: str) -> dict[str, Any]:
        return {
            "location": location,
            "tags": self.tags,
            "properties": {
                "networkSecurityGroup": {"id": nsg_id},
                "ipConfigurations": [
                    {
                        "name": "ipconfig1",
                        "properties": {
                            "subnet": {"id": subnet_id},
                            "publicIPAddress": {"id": ip_id},
                            "privateIPAllocationMethod": "Dynamic",
                        },
                    }
                ],
            },
        }

    def vm_body(
        self,
        location: str,
        *,
        size: str,
        image: ImageRef,
        admin: str,
        nic_id: str,
        password: str | None,
        ssh_key: str | None,
    ) -> dict[str, Any]:
        """The VM body. The password goes to ARM in this body only and is never kept."""
        os_profile: dict[str, Any] = {"computerName": self.vm, "adminUsername": admin}
        if password is not None:
            os_profile["adminPassword"] = password
        if not image.windows:
            linux: dict[str, Any] = {"disablePasswordAuthentication": password is None}
            if ssh_key is not None:
                linux["ssh"] = {
                    "publicKeys": [
                        {"path": f"/home/{admin}/.ssh/authorized_keys", "keyData": ssh_key}
                    ]
                }
            os_profile["linuxConfiguration"] = linux
        return {
            "location": location,
            "tags": self.tags,
            "properties": {
                "hardwareProfile": {"vmSize": size},
                "storageProfile": {
                    "imageReference": image.arm(),
                    "osDisk": {
                        "name": self.osdisk,
                        "createOption": "FromImage",
                        "caching": "ReadWrite",
                        "managedDisk": {"storageAccountType": "StandardSSD_LRS"},
                        # The disk goes with the VM: vm/delete needs no disk call.
                        "deleteOption": "Delete",
                    },
                },
                "osProfile": os_profile,
                "networkProfile": {"networkInterfaces": [{"id": nic_id}]},
            },
        }
