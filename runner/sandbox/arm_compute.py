"""Microsoft.Compute: virtual machines, their instance view and power actions."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from . import arm_tracked as tracked
from . import catalog
from .arm_core import Call, Reply, Route, accept, id_ref, not_found, route
from .errors import ArmError, BadRequest, Conflict, NotFound
from .naming import check_vm_name
from .world import Resource, World

__all__ = ["routes"]

NS = "Microsoft.Compute"
VM = f"{NS}/virtualMachines"
NIC = "Microsoft.Network/networkInterfaces"

# Power actions: (transitional state while the operation runs, final state).
_ACTIONS: dict[str, tuple[str, str]] = {
    "start": ("starting", "running"),
    "powerOff": ("stopping", "stopped"),
    "deallocate": ("deallocating", "deallocated"),
    "restart": ("starting", "running"),
}
_DISPLAY = {
    "running": "VM running",
    "starting": "VM starting",
    "stopping": "VM stopping",
    "stopped": "VM stopped",
    "deallocating": "VM deallocating",
    "deallocated": "VM deallocated",
}


def _is_windows(body: dict[str, Any]) -> bool:
    props = body.get("properties") or {}
    if (props.get("osProfile") or {}).get("windowsConfiguration"):
        return True
    image = (props.get("storageProfile") or {}).get("imageReference") or {}
    return "windows" in f"{image.get('publisher', '')} {image.get('offer', '')}".lower()


def _check_name(name: str, body: dict[str, Any]) -> None:
    check_vm_name(name, windows=_is_windows(body))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.0000000+00:00", time.gmtime())


def _os_profile(
    draft: Resource, existing: Resource | None, given: dict[str, Any] | None, windows: bool
) -> dict[str, Any]:
    if existing is not None:
        current: dict[str, Any] = existing.properties["osProfile"]
        if given is None:
            return current
        for key in ("adminUsername", "computerName"):
            if key in given and given[key] != current.get(key):
                raise BadRequest(
                    "PropertyChangeNotAllowed",
                    f"Changing property 'osProfile.{key}' is not allowed.",
                )
        return current
    if not given or not given.get("adminUsername"):
        raise BadRequest(
            "InvalidParameter", "Required parameter 'osProfile.adminUsername' is missing (null)."
        )
    # The admin password is accepted and dropped: ARM never returns it, and nor do we.
    profile = {k: v for k, v in given.items() if k not in ("adminPassword", "customData")}
    profile.setdefault("computerName", draft.name)
    profile.setdefault("secrets", [])
    profile.setdefault("allowExtensionOperations", True)
    if windows:
        profile.setdefault("windowsConfiguration", {"provisionVMAgent": True})
    else:
        profile.setdefault(
            "linuxConfiguration",
            {
                "disablePasswordAuthentication": "adminPassword" not in given,
                "provisionVMAgent": True,
            },
        )
    return profile


def _build_vm(
    call: Call, draft: Resource, existing: Resource | None, body: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    props = body.get("properties") or {}
    windows = _is_windows(body)
    size = (props.get("hardwareProfile") or {}).get("vmSize")
    if not size:
        if existing is None:
            raise BadRequest(
                "InvalidParameter", "Required parameter 'hardwareProfile.vmSize' is missing (null)."
            )
        size = existing.properties["hardwareProfile"]["vmSize"]
    known = catalog.find_size(str(size))
    if known is None:
        raise ArmError(
            "InvalidParameter",
            f"The requested VM size {size} is not available in the current region. The sizes "
            f"available in the current region are: {', '.join(s.name for s in catalog.SIZES)}. "
            "Find out more on the available VM sizes in each region at "
            "https://aka.ms/azure-regions.",
            status=400,
        )
    size = known.name
    nic_refs = [
        id_ref(n) for n in (props.get("networkProfile") or {}).get("networkInterfaces") or []
    ]
    if not nic_refs and existing is not None:
        nic_refs = [n["id"] for n in existing.properties["networkProfile"]["networkInterfaces"]]
    if not nic_refs:
        raise BadRequest(
            "InvalidParameter",
            "Required parameter 'networkProfile.networkInterfaces' is missing (null).",
        )
    nics = []
    for ref in nic_refs:
        nic = call.world.get(ref or "")
        if nic is None or nic.type != NIC:
            raise NotFound("NotFound", f"Resource {ref} not found.")
        holder = id_ref(nic.properties.get("virtualMachine"))
        if holder and holder.lower() != draft.id.lower() and call.world.get(holder) is not None:
            raise BadRequest(
                "NicInUse", f"Network interface {nic.id} is already in use by {holder}."
            )
        nics.append(nic)
    storage = dict(props.get("storageProfile") or {})
    if existing is not None:
        storage = {**existing.properties["storageProfile"], **storage}
        storage["osDisk"] = existing.properties["storageProfile"]["osDisk"]
    else:
        os_disk = dict(storage.get("osDisk") or {})
        os_disk.setdefault("name", f"{draft.name}_OsDisk_1_{uuid.uuid4().hex}")
        os_disk.setdefault("createOption", "FromImage")
        os_disk.setdefault("caching", "ReadWrite")
        os_disk["osType"] = "Windows" if windows else "Linux"
        os_disk.setdefault("managedDisk", {"storageAccountType": "Premium_LRS"})
        os_disk.setdefault("diskSizeGB", 30)
        storage["osDisk"] = os_disk
        storage.setdefault("dataDisks", [])
    # Attach now, not when provisioning ends, so a second VM cannot take the same NIC.
    for _i, nic in enumerate(nics):
        nic.properties["virtualMachine"] = {"id": draft.id}
    properties: dict[str, Any] = {
        "vmId": existing.properties["vmId"] if existing else str(uuid.uuid4()),
        "hardwareProfile": {"vmSize": size},
        "storageProfile": storage,
        "osProfile": _os_profile(draft, existing, props.get("osProfile"), windows),
        "networkProfile": {
            "networkInterfaces": [
                {"id": nic.id, "properties": {"primary": i == 0}} for i, nic in enumerate(nics)
            ]
        },
        "timeCreated": existing.properties["timeCreated"] if existing else _now(),
    }
    for key in ("diagnosticsProfile", "securityProfile", "priority", "licenseType"):
        if key in props:
            properties[key] = props[key]
    extra: dict[str, Any] = {k: body[k] for k in ("zones", "identity", "plan") if k in body}
    if existing is None:
        draft.hidden["power"] = "starting"
    return properties, extra


def _provisioned(world: World, vm: Resource) -> None:
    if vm.hidden.get("power") == "starting":
        vm.hidden["power"] = "running"
    # A NIC gets its MAC address once a VM runs on it (what `az vm list -d` shows).
    for ref in vm.properties["networkProfile"]["networkInterfaces"]:
        nic = world.get(ref["id"])
        if nic is not None and "macAddress" not in nic.properties:
            octets = uuid.uuid5(uuid.NAMESPACE_URL, nic.id).bytes[:3]
            nic.properties["macAddress"] = "00-0D-3A-" + "-".join(f"{b:02X}" for b in octets)


def _deleted(world: World, vm: Resource) -> None:
    for nic in world.of_type(NIC):
        if (id_ref(nic.properties.get("virtualMachine")) or "").lower() == vm.id.lower():
            del nic.properties["virtualMachine"]


KIND = tracked.Kind(VM, _build_vm, _check_name, on_provisioned=_provisioned, on_deleted=_deleted)


def _instance_view(vm: Resource) -> dict[str, Any]:
    power = str(vm.hidden.get("power", "stopped"))
    state = vm.provisioning_state
    return {
        "computerName": vm.properties["osProfile"].get("computerName", vm.name),
        "osName": "windows"
        if vm.properties["storageProfile"]["osDisk"]["osType"] == "Windows"
        else "ubuntu",
        "vmAgent": {"vmAgentVersion": "2.0.0-sandbox", "statuses": []},
        "statuses": [
            {
                "code": f"ProvisioningState/{state.lower()}",
                "level": "Error" if state == "Failed" else "Info",
                "displayStatus": f"Provisioning {state.lower()}",
                "time": _now(),
            },
            {"code": f"PowerState/{power}", "level": "Info", "displayStatus": _DISPLAY[power]},
        ],
    }


def _render_vm(world: World, vm: Resource) -> dict[str, Any]:
    return vm.render()


KIND.register(_render_vm)


def _vm_id(call: Call) -> str:
    rg = call.world.resource_group(call.sub, call.params["rg"])
    return f"{rg.id}/providers/{VM}/{call.params['name']}"


def _existing_vm(call: Call) -> Resource:
    vm = call.world.get(_vm_id(call))
    if vm is None:
        raise not_found(VM, call.params["name"], call.params["rg"])
    return vm


def _put(call: Call) -> Reply:
    return tracked.put(call, KIND, _vm_id(call), call.params["name"])


def _patch(call: Call) -> Reply:
    return tracked.patch(call, KIND, _vm_id(call), VM, call.params["name"])


def _get(call: Call) -> Reply:
    vm = _existing_vm(call)
    body = _render_vm(call.world, vm)
    if "instanceview" in call.query.get("$expand", "").lower():
        body["properties"]["instanceView"] = _instance_view(vm)
    return Reply(200, body)


def _get_instance_view(call: Call) -> Reply:
    return Reply(200, _instance_view(_existing_vm(call)))


def _delete(call: Call) -> Reply:
    return tracked.delete(call, KIND, _vm_id(call))


def _list(call: Call) -> Reply:
    rg = call.world.resource_group(call.sub, call.params["rg"])
    return tracked.list_in(call, VM, rg.id)


def _list_all(call: Call) -> Reply:
    return tracked.list_in(call, VM, f"/subscriptions/{call.sub}")


def _power_action(name: str) -> Callable[[Call], Reply]:
    transitional, final = _ACTIONS[name]

    def handler(call: Call) -> Reply:
        vm = _existing_vm(call)
        if vm.provisioning_state in ("Creating", "Deleting"):
            raise Conflict(
                "OperationNotAllowed",
                f"Operation '{name}' is not allowed on VM '{vm.name}' since the VM is "
                f"{vm.provisioning_state.lower()}.",
            )
        before = vm.hidden.get("power", "stopped")
        vm.hidden["power"] = transitional

        def done() -> None:
            vm.hidden["power"] = final

        def failed() -> None:
            vm.hidden["power"] = before

        return accept(
            call, status=202, body=None, on_success=done, on_failure=failed, location_header=True
        )

    return handler


def routes() -> list[Route]:
    """Every Microsoft.Compute route the sandbox serves."""
    base = "/subscriptions/{sub}/resourceGroups/{rg}/providers/" + VM
    item = base + "/{name}"
    out = [
        route("PUT", item, f"{VM}/write", _put),
        route("GET", item, f"{VM}/read", _get),
        route("DELETE", item, f"{VM}/delete", _delete),
        route("PATCH", item, f"{VM}/write", _patch),
        route("GET", item + "/instanceView", f"{VM}/instanceView/read", _get_instance_view, 1),
        route("GET", base, f"{VM}/read", _list, scope_trim=1),
        route("GET", "/subscriptions/{sub}/providers/" + VM, f"{VM}/read", _list_all, 1),
    ]
    for name in _ACTIONS:
        out.append(route("POST", f"{item}/{name}", f"{VM}/{name}/action", _power_action(name), 1))
    return out
