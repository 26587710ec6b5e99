"""What the sandbox's Azure offers: regions, VM sizes, platform images, api-versions.

Plain data, small on purpose: enough for the images ``az vm create`` knows by alias, the
sizes people type, and every api-version the SDKs and azure-cli of AZURE.md send.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "API_VERSIONS",
    "IMAGES",
    "LOCATIONS",
    "SIZES",
    "Image",
    "Size",
    "api_versions",
    "find_image",
    "find_size",
    "location_name",
]

# name → display name. Real public regions: a name outside them is refused like ARM does.
LOCATIONS: dict[str, str] = {
    "eastus": "East US",
    "eastus2": "East US 2",
    "centralus": "Central US",
    "northcentralus": "North Central US",
    "southcentralus": "South Central US",
    "westcentralus": "West Central US",
    "westus": "West US",
    "westus2": "West US 2",
    "westus3": "West US 3",
    "canadacentral": "Canada Central",
    "canadaeast": "Canada East",
    "brazilsouth": "Brazil South",
    "northeurope": "North Europe",
    "westeurope": "West Europe",
    "uksouth": "UK South",
    "ukwest": "UK West",
    "francecentral": "France Central",
    "germanywestcentral": "Germany West Central",
    "italynorth": "Italy North",
    "norwayeast": "Norway East",
    "polandcentral": "Poland Central",
    "swedencentral": "Sweden Central",
    "switzerlandnorth": "Switzerland North",
    "uaenorth": "UAE North",
    "southafricanorth": "South Africa North",
    "centralindia": "Central India",
    "southindia": "South India",
    "eastasia": "East Asia",
    "southeastasia": "Southeast Asia",
    "japaneast": "Japan East",
    "japanwest": "Japan West",
    "koreacentral": "Korea Central",
    "australiaeast": "Australia East",
    "australiasoutheast": "Australia Southeast",
}
_BY_DISPLAY = {v.lower().replace(" ", ""): k for k, v in LOCATIONS.items()}


def location_name(value: str) -> str | None:
    """The region name for ``value`` (a name or display name, any case), if it is one."""
    key = value.lower().replace(" ", "")
    return key if key in LOCATIONS else _BY_DISPLAY.get(key)


@dataclass(frozen=True)
class Size:
    """A VM size, with the fields ``vmSizes`` and ``Microsoft.Compute/skus`` show."""

    name: str
    cores: int
    memory_mb: int
    max_data_disks: int
    resource_disk_mb: int
    family: str

    def vm_size(self) -> dict[str, object]:
        """The ``vmSizes`` entry."""
        return {
            "name": self.name,
            "numberOfCores": self.cores,
            "osDiskSizeInMB": 1047552,
            "resourceDiskSizeInMB": self.resource_disk_mb,
            "memoryInMB": self.memory_mb,
            "maxDataDiskCount": self.max_data_disks,
        }

    def sku(self, location: str) -> dict[str, object]:
        """The ``Microsoft.Compute/skus`` entry for one region."""
        caps = {
            "vCPUs": self.cores,
            "MemoryGB": self.memory_mb / 1024,
            "MaxDataDiskCount": self.max_data_disks,
            "HyperVGenerations": "V1,V2",
            "PremiumIO": "True",
            "AcceleratedNetworkingEnabled": "False"
            if self.family.startswith("standardB")
            else "True",
            "CpuArchitectureType": "x64",
            "TrustedLaunchDisabled": "False",
        }
        return {
            "resourceType": "virtualMachines",
            "name": self.name,
            "tier": "Standard",
            "size": self.name.removeprefix("Standard_"),
            "family": self.family,
            "locations": [location],
            "locationInfo": [{"location": location, "zones": ["1", "2", "3"], "zoneDetails": []}],
            "capabilities": [{"name": k, "value": str(v)} for k, v in caps.items()],
            "restrictions": [],
        }


SIZES: tuple[Size, ...] = (
    Size("Standard_B1ls", 1, 512, 2, 4096, "standardBSFamily"),
    Size("Standard_B1s", 1, 1024, 2, 4096, "standardBSFamily"),
    Size("Standard_B1ms", 1, 2048, 2, 4096, "standardBSFamily"),
    Size("Standard_B2s", 2, 4096, 4, 8192, "standardBSFamily"),
    Size("Standard_B2ms", 2, 8192, 4, 16384, "standardBSFamily"),
    Size("Standard_B4ms", 4, 16384, 8, 32768, "standardBSFamily"),
    Size("Standard_B2ats_v2", 2, 1024, 4, 0, "standardBasv2Family"),
    Size("Standard_B2s_v2", 2, 8192, 4, 0, "standardBsv2Family"),
    Size("Standard_DS1_v2", 1, 3584, 4, 7168, "standardDSv2Family"),
    Size("Standard_DS2_v2", 2, 7168, 8, 14336, "standardDSv2Family"),
    Size("Standard_D2s_v3", 2, 8192, 4, 16384, "standardDSv3Family"),
    Size("Standard_D4s_v3", 4, 16384, 8, 32768, "standardDSv3Family"),
    Size("Standard_D2s_v5", 2, 8192, 4, 0, "standardDSv5Family"),
    Size("Standard_D4s_v5", 4, 16384, 8, 0, "standardDSv5Family"),
    Size("Standard_D2as_v5", 2, 8192, 4, 0, "standardDASv5Family"),
    Size("Standard_E2s_v5", 2, 16384, 4, 0, "standardESv5Family"),
    Size("Standard_F2s_v2", 2, 4096, 4, 16384, "standardFSv2Family"),
)
_SIZES = {s.name.lower(): s for s in SIZES}


def find_size(name: str) -> Size | None:
    """The size called ``name`` (any case)."""
    return _SIZES.get(name.lower())


@dataclass(frozen=True)
class Image:
    """A platform image: one version of publisher/offer/sku, and its alias if it has one."""

    alias: str
    publisher: str
    offer: str
    sku: str
    version: str
    os: str  # "Linux" | "Windows"
    generation: str = "V2"

    def matches(self, publisher: str, offer: str, sku: str) -> bool:
        """Whether this is the image of publisher/offer/sku (case-insensitive, as ARM)."""
        mine = (self.publisher, self.offer, self.sku)
        return tuple(p.lower() for p in mine) == (publisher.lower(), offer.lower(), sku.lower())


# The aliases of azure-cli's list and of the runner's built-in jobs.
IMAGES: tuple[Image, ...] = (
    Image("Ubuntu2204", "Canonical", "0001-com-ubuntu-server-jammy", "22_04-lts-gen2",
          "22.04.202410020", "Linux"),
    Image("Ubuntu2404", "Canonical", "ubuntu-24_04-lts", "server", "24.04.202410090", "Linux"),
    Image("Debian11", "Debian", "debian-11", "11-backports-gen2", "0.20241004.1890", "Linux"),
    Image("Debian12", "Debian", "debian-12", "12-gen2", "0.20241009.1901", "Linux"),
    Image("RHELRaw8LVMGen2", "RedHat", "RHEL", "8-lvm-gen2", "8.10.2024090415", "Linux"),
    Image("OpenSuseLeap154Gen2", "SUSE", "openSUSE-leap-15-4", "gen2", "2023.07.21", "Linux"),
    Image("SuseSles15SP5", "SUSE", "sles-15-sp5", "gen2", "2024.09.26", "Linux"),
    Image("CentOS85Gen2", "OpenLogic", "CentOS", "8_5-gen2", "8.5.2022101401", "Linux"),
    Image("Win2022Datacenter", "MicrosoftWindowsServer", "WindowsServer", "2022-datacenter-g2",
          "20348.2762.241009", "Windows"),
    Image("Win2022AzureEditionCore", "MicrosoftWindowsServer", "WindowsServer",
          "2022-datacenter-azure-edition-core", "20348.2762.241006", "Windows"),
    Image("Win2019Datacenter", "MicrosoftWindowsServer", "WindowsServer",
          "2019-datacenter-gensecond", "17763.6414.241004", "Windows"),
    Image("Win2016Datacenter", "MicrosoftWindowsServer", "WindowsServer",
          "2016-datacenter-gensecond", "14393.7428.241004", "Windows"),
    Image("", "Canonical", "ubuntu-24_04-lts", "server-gen1", "24.04.202410090", "Linux", "V1"),
)  # fmt: skip


def find_image(publisher: str, offer: str, sku: str) -> Image | None:
    """The image of publisher/offer/sku, if the catalogue has it."""
    return next((i for i in IMAGES if i.matches(publisher, offer, sku)), None)


def _monthly(first: int, last: int, months: tuple[int, ...], day: str = "01") -> tuple[str, ...]:
    return tuple(f"{y}-{m:02d}-{day}" for y in range(first, last + 1) for m in months)


# Supported api-versions by namespace (newest matter most: the SDKs and az pin recent
# ones). A request with another version gets ARM's 400 InvalidApiVersionParameter.
_COMPUTE = (
    "2015-06-15", "2016-03-30", "2016-04-30-preview", "2017-03-30", "2017-09-01", "2017-12-01",
    "2018-04-01", "2018-06-01", "2018-10-01", "2019-03-01", "2019-04-01", "2019-07-01",
    "2019-12-01", "2020-06-01", "2020-12-01", "2021-03-01", "2021-04-01", "2021-07-01",
    "2021-11-01", "2022-03-01", "2022-08-01", "2022-11-01", "2023-03-01", "2023-07-01",
    "2023-09-01", "2024-03-01", "2024-07-01", "2024-11-01", "2025-04-01", "2025-11-01",
    "2026-04-01",
)  # fmt: skip
_NETWORK = (
    "2015-06-15",
    "2016-03-30",
    "2016-06-01",
    "2016-09-01",
    "2016-12-01",
    *_monthly(2017, 2026, (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)),
)
_RESOURCES = (
    "2014-04-01", "2015-01-01", "2015-11-01", "2016-02-01", "2016-06-01", "2016-07-01",
    "2016-09-01", "2017-05-10", "2018-02-01", "2018-05-01", "2019-03-01", "2019-05-01",
    "2019-05-10", "2019-07-01", "2019-08-01", "2019-10-01", "2019-11-01", "2020-01-01",
    "2020-06-01", "2020-08-01", "2020-10-01", "2021-01-01", "2021-04-01", "2022-01-01",
    "2022-09-01", "2022-12-01", "2023-07-01", "2024-03-01", "2024-07-01", "2024-08-01",
    "2024-11-01", "2025-01-01", "2025-03-01", "2025-04-01", "2025-07-01", "2025-10-01",
    "2026-01-01", "2026-03-01", "2026-06-01",
)  # fmt: skip
_AUTHORIZATION = (
    "2015-07-01", "2017-05-01", "2018-01-01-preview", "2018-09-01-preview", "2020-04-01-preview",
    "2020-10-01-preview", "2021-12-01-preview", "2022-04-01", "2022-05-01-preview",
    "2022-08-01-preview", "2024-07-01-preview", "2024-09-01-preview", "2025-12-01-preview",
)  # fmt: skip
API_VERSIONS: dict[str, tuple[str, ...]] = {
    "microsoft.compute": _COMPUTE,
    "microsoft.network": _NETWORK,
    "microsoft.resources": _RESOURCES,
    "microsoft.authorization": _AUTHORIZATION,
}


def api_versions(namespace: str) -> tuple[str, ...]:
    """Newest first: the versions ARM lists in InvalidApiVersionParameter and /providers."""
    return tuple(sorted(API_VERSIONS.get(namespace.lower(), ()), reverse=True))


# The resource types each namespace registers (what /providers lists; locations: all).
RESOURCE_TYPES: dict[str, tuple[str, ...]] = {
    "Microsoft.Compute": (
        "virtualMachines",
        "virtualMachines/instanceView",
        "locations",
        "locations/vmSizes",
        "locations/publishers",
        "locations/operations",
        "skus",
    ),
    "Microsoft.Network": (
        "virtualNetworks",
        "virtualNetworks/subnets",
        "networkSecurityGroups",
        "networkSecurityGroups/securityRules",
        "publicIPAddresses",
        "networkInterfaces",
        "locations",
        "locations/operations",
    ),
    "Microsoft.Resources": (
        "resourceGroups",
        "deployments",
        "deployments/operations",
        "tags",
        "subscriptions",
        "subscriptions/locations",
        "providers",
        "resources",
    ),
    "Microsoft.Authorization": ("roleAssignments", "roleDefinitions", "permissions"),
}
# Types without a location of their own: ARM lists no locations for them.
GLOBAL_TYPES = frozenset(
    {"skus", "resourceGroups", "deployments", "tags", "subscriptions", "providers", "resources"}
)
