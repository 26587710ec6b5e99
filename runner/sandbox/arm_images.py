"""Microsoft.Compute's platform-image catalogue, as ``az vm create --image ALIAS`` reads it.

az first lists ``…/skus/{sku}/versions?$top=1&$orderby=name desc`` to find the latest
version, then GETs that version for its generation, architecture and security features.
Listings are bare JSON arrays, as the real API answers them.
"""

from __future__ import annotations

import json
from typing import Any

from . import catalog
from .arm_core import Call, Reply, Route, route
from .catalog import Image
from .errors import NotFound

__all__ = ["alias_doc", "routes"]

_ACTION = "Microsoft.Compute/locations/publishers/read"


def _location(call: Call) -> str:
    name = catalog.location_name(call.params["loc"])
    if name is None:
        raise NotFound("NoRegisteredProviderFound", f"Location '{call.params['loc']}' not found.")
    return name


def _base(call: Call, loc: str) -> str:
    return f"/Subscriptions/{call.sub}/Providers/Microsoft.Compute/Locations/{loc}/Publishers"


def _entry(call: Call, name: str, path: str) -> dict[str, str]:
    loc = _location(call)
    return {"location": loc, "name": name, "id": f"{_base(call, loc)}/{path}"}


def _images(call: Call, **given: str) -> list[Image]:
    out = []
    for image in catalog.IMAGES:
        fields = {"pub": image.publisher, "offer": image.offer, "sku": image.sku}
        if all(fields[k].lower() == v.lower() for k, v in given.items()):
            out.append(image)
    return out


def _publishers(call: Call) -> Reply:
    names = sorted({i.publisher for i in catalog.IMAGES})
    return Reply(200, [_entry(call, n, n) for n in names])


def _offers(call: Call) -> Reply:
    p = call.params
    images = _images(call, pub=p["pub"])
    names = sorted({i.offer for i in images})
    vm = "ArtifactTypes/VMImage/Offers"
    return Reply(200, [_entry(call, n, f"{images[0].publisher}/{vm}/{n}") for n in names])


def _skus(call: Call) -> Reply:
    p = call.params
    images = _images(call, pub=p["pub"], offer=p["offer"])
    if not images:
        raise NotFound("NotFound", f"Artifact: VMImage was not found (offer '{p['offer']}').")
    head = f"{images[0].publisher}/ArtifactTypes/VMImage/Offers/{images[0].offer}/Skus"
    return Reply(200, [_entry(call, i.sku, f"{head}/{i.sku}") for i in images])


def _version_path(image: Image) -> str:
    return (
        f"{image.publisher}/ArtifactTypes/VMImage/Offers/{image.offer}/Skus/{image.sku}"
        f"/Versions/{image.version}"
    )


def _found(call: Call) -> Image:
    p = call.params
    image = catalog.find_image(p["pub"], p["offer"], p["sku"])
    if image is None:
        raise NotFound(
            "NotFound",
            f"Artifact: VMImage was not found. (publisher '{p['pub']}', offer '{p['offer']}', "
            f"sku '{p['sku']}')",
        )
    return image


def _versions(call: Call) -> Reply:
    image = _found(call)
    return Reply(200, [_entry(call, image.version, _version_path(image))])


def _version(call: Call) -> Reply:
    image = _found(call)
    asked = call.params["version"]
    if asked.lower() not in (image.version.lower(), "latest"):
        raise NotFound("NotFound", f"Artifact: VMImage was not found (version '{asked}').")
    body: dict[str, Any] = _entry(call, image.version, _version_path(image))
    features = [
        {"name": "SecurityType", "value": "TrustedLaunchSupported"},
        {"name": "IsAcceleratedNetworkSupported", "value": "True"},
        {"name": "DiskControllerTypes", "value": "SCSI, NVMe"},
    ]
    body["properties"] = {
        "hyperVGeneration": image.generation,
        "architecture": "x64",
        "replicaType": "Unmanaged",
        "disallowed": {"vmDiskType": "Unmanaged"},
        "automaticOSUpgradeProperties": {"automaticOSUpgradeSupported": False},
        "imageDeprecationStatus": {"imageState": "Active"},
        "features": features if image.generation == "V2" else [],
        "osDiskImage": {"operatingSystem": image.os, "sizeInGb": 30},
        "dataDiskImages": [],
    }
    return Reply(200, body)


def alias_doc() -> bytes:
    """azure-cli's image alias document (``vmImageAliasDoc``), built from the catalogue."""
    aliases: dict[str, dict[str, dict[str, str]]] = {"Linux": {}, "Windows": {}}
    for image in catalog.IMAGES:
        if image.alias:
            aliases[image.os][image.alias] = {
                "publisher": image.publisher,
                "offer": image.offer,
                "sku": image.sku,
                "version": "latest",
                "architecture": "x64",
            }
    doc = {
        "$schema": "http://schema.management.azure.com/schemas/2015-01-01/deploymentTemplate.json",
        "contentVersion": "1.0.0.0",
        "parameters": {},
        "variables": {},
        "resources": [],
        "outputs": {"aliases": {"type": "object", "value": aliases}},
    }
    return json.dumps(doc).encode()


def routes() -> list[Route]:
    """Publishers, offers, skus, versions and one version."""
    pub = "/subscriptions/{sub}/providers/Microsoft.Compute/locations/{loc}/publishers"
    offers = pub + "/{pub}/artifacttypes/vmimage/offers"
    skus = offers + "/{offer}/skus"
    versions = skus + "/{sku}/versions"
    return [
        route("GET", pub, _ACTION, _publishers, 1),
        route("GET", offers, _ACTION, _offers, 1),
        route("GET", skus, _ACTION, _skus, 1),
        route("GET", versions, _ACTION, _versions, 1),
        route("GET", versions + "/{version}", _ACTION, _version, 1),
    ]
