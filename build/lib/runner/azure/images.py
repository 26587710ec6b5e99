"""VM images: the aliases ``az vm create --image`` knows, or ``publisher:offer:sku:version``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from runner.params import Param

__all__ = ["ALIASES", "Image", "ImageRef", "resolve"]


@dataclass(frozen=True)
class ImageRef:
    """A marketplace image reference."""

    publisher: str
    offer: str
    sku: str
    version: str = "latest"

    @property
    def windows(self) -> bool:
        """Whether the image is Windows (longer name rules, RDP instead of SSH)."""
        return "windows" in f"{self.publisher} {self.offer}".lower()

    def arm(self) -> dict[str, str]:
        """The ``imageReference`` body ARM expects."""
        return {
            "publisher": self.publisher,
            "offer": self.offer,
            "sku": self.sku,
            "version": self.version,
        }

    def __str__(self) -> str:
        return f"{self.publisher}:{self.offer}:{self.sku}:{self.version}"


# The aliases of azure-cli's image list (az vm image list), Gen2 where it offers one.
ALIASES: dict[str, ImageRef] = {
    "Ubuntu2204": ImageRef("Canonical", "0001-com-ubuntu-server-jammy", "22_04-lts-gen2"),
    "Ubuntu2404": ImageRef("Canonical", "ubuntu-24_04-lts", "server"),
    "Debian11": ImageRef("Debian", "debian-11", "11-backports-gen2"),
    "Debian12": ImageRef("Debian", "debian-12", "12-gen2"),
    "RHELRaw8LVMGen2": ImageRef("RedHat", "RHEL", "8-lvm-gen2"),
    "OpenSuseLeap154Gen2": ImageRef("SUSE", "openSUSE-leap-15-4", "gen2"),
    "SuseSles15SP5": ImageRef("SUSE", "sles-15-sp5", "gen2"),
    "Win2022Datacenter": ImageRef("MicrosoftWindowsServer", "WindowsServer", "2022-datacenter-g2"),
    "Win2019Datacenter": ImageRef(
        "MicrosoftWindowsServer", "WindowsServer", "2019-datacenter-gensecond"
    ),
}
_BY_LOWER = {k.lower(): v for k, v in ALIASES.items()}
_URN = re.compile(r"([\w.-]+):([\w.-]+):([\w.-]+):([\w.-]+)")
IMAGE_PATTERN = r"^([A-Za-z0-9]+|[\w.-]+:[\w.-]+:[\w.-]+:[\w.-]+)$"


def resolve(image: str) -> ImageRef:
    """The reference for an alias (any case, like az) or a ``publisher:offer:sku:version``."""
    found = _BY_LOWER.get(image.lower())
    if found is not None:
        return found
    m = _URN.fullmatch(image)
    if m is None:
        raise ValueError(f"unknown image {image!r}")
    return ImageRef(*m.groups())


def _check(value: object) -> object:
    if isinstance(value, str):
        try:
            resolve(value)
        except ValueError:
            raise PydanticCustomError(
                "azure_image",
                "an image is an alias ({aliases}) or publisher:offer:sku:version",
                {"aliases": ", ".join(ALIASES)},
            ) from None
    return value


Image = Annotated[
    str,
    Param(
        pattern=IMAGE_PATTERN,
        description="Image alias (Ubuntu2204, Ubuntu2404, Debian12, Win2022Datacenter, …) "
        "or publisher:offer:sku:version",
    ),
    BeforeValidator(_check),
]
