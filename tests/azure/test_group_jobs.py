"""group/ jobs end to end: HTTP trigger → runner → real SDKs → sandbox over HTTPS → output."""

from __future__ import annotations

import json

PW = "Sandbox-Passw0rd-42!"


def _result(text: str) -> dict[str, str]:
    """The fields of text mode's last line: run, state, exit, duration."""
    last = text.strip().splitlines()[-1]
    assert last.startswith("runner: run="), text
    return dict(part.split("=", 1) for part in last.removeprefix("runner: ").split())


def _group(rig, name: str):
    with rig.sandbox.world.lock:
        return rig.sandbox.world.get(
            f"/subscriptions/{rig.sandbox.subscription_id}/resourceGroups/{name}"
        )


def test_group_create_makes_a_tagged_group_that_group_list_shows(azure_rig):
    """group/create makes the group where asked, with its tags; group/list lists it."""
    rig = azure_rig()
    with rig.srv.client() as c:
        r = c.post(
            "/group/create",
            params={"rg": "demo", "location": "East US", "tags": "env=dev,owner=ops"},
        )
        default = c.post("/group/create", params={"rg": "other"})
        assert _result(default.text)["state"] == "succeeded", default.text
        listed = c.post("/group/list", params={"as_json": "true"})
        table = c.post("/group/list")
    assert _result(r.text)["state"] == "succeeded", r.text
    assert "created resource group demo in eastus" in r.text
    group = _group(rig, "demo")
    assert (group.location, group.tags) == ("eastus", {"env": "dev", "owner": "ops"})
    assert _group(rig, "other").location == rig.sandbox.world.location
    rows = json.loads(listed.text.splitlines()[0])
    assert [(g["name"], g["location"], g["tags"]) for g in rows] == [
        ("demo", "eastus", {"env": "dev", "owner": "ops"}),
        ("other", "westeurope", {}),
    ]
    assert "env=dev, owner=ops" in table.text and "2 resource group(s)" in table.text


def test_group_create_again_keeps_tags_and_refuses_to_move(azure_rig):
    """Re-running without tags keeps them; another location is a clear error, not a move."""
    rig = azure_rig()
    with rig.srv.client() as c:
        c.post("/group/create", params={"rg": "demo", "tags": "env=dev"})
        again = c.post("/group/create", params={"rg": "demo"})
        moved = c.post("/group/create", params={"rg": "demo", "location": "eastus"})
        retag = c.post("/group/create", params={"rg": "demo", "tags": "env=prod"})
    assert "already exists in westeurope; nothing to change" in again.text
    assert _result(moved.text)["state"] == "failed"
    assert "already exists in westeurope, not eastus; a resource group cannot move" in moved.text
    assert "tags updated" in retag.text
    assert _group(rig, "demo").tags == {"env": "prod"}


def test_group_delete_removes_the_group_and_lists_what_was_in_it(azure_rig):
    """group/delete prints each resource in the group, deletes it all, and is safe to repeat."""
    rig = azure_rig()
    with rig.srv.client() as c:
        created = c.post("/vm/create", params={"rg": "demo", "vmname": "vm1", "pw": PW})
        assert _result(created.text)["state"] == "succeeded", created.text
        r = c.post("/group/delete", params={"rg": "demo"})
        again = c.post("/group/delete", params={"rg": "demo"})
    assert _result(r.text)["state"] == "succeeded", r.text
    assert "holds 5 resource(s)" in r.text
    for line in (
        "Microsoft.Compute/virtualMachines  vm1",
        "Microsoft.Network/virtualNetworks  vm1-vnet",
        "Microsoft.Network/publicIPAddresses  vm1-ip",
    ):
        assert line in r.text
    assert "deleted resource group demo" in r.text
    assert rig.resource_ids() == set()
    assert _result(again.text)["state"] == "succeeded"
    assert "resource group demo does not exist; nothing to delete" in again.text


def test_bad_group_parameters_are_refused_with_422_before_any_azure_call(azure_rig):
    """A bad group name, location and tags are each listed in one 422; Azure is not called."""
    rig = azure_rig()
    with rig.srv.client() as c:
        r = c.post("/group/create", params={"rg": "a" * 91, "location": "x", "tags": "novalue"})
        dot = c.post("/group/delete", params={"rg": "ends.with.dot."})
    assert r.status_code == 422, r.text
    assert {e["name"] for e in r.json()["errors"]} == {"rg", "location", "tags"}
    assert dot.status_code == 422
    assert dot.json()["errors"] == [
        {"name": "rg", "reason": "a resource group name cannot end with a period"}
    ]
    assert rig.sandbox.controls.arm_calls == {}
