"""vm/ jobs end to end: HTTP trigger → runner → real SDKs → sandbox over HTTPS → output."""

from __future__ import annotations

import json
import logging
import time

from runner.azure import operations
from runner.sandbox import Fault
from tests.conftest import done_of, files_containing, parse_sse

PW = "Sandbox-Passw0rd-42!"
SSH_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops@laptop"
)
ASYNC = {"Prefer": "respond-async"}


def _result(text: str) -> dict[str, str]:
    """The fields of text mode's last line: run, state, exit, duration."""
    last = text.strip().splitlines()[-1]
    assert last.startswith("runner: run="), text
    return dict(part.split("=", 1) for part in last.removeprefix("runner: ").split())


def _rid(rig, suffix: str = "") -> str:
    return f"/subscriptions/{rig.sandbox.subscription_id}/resourceGroups/demo{suffix}"


def _net(rig, kind: str, name: str) -> str:
    return _rid(rig, f"/providers/Microsoft.Network/{kind}/{name}")


def _vm_id(rig, name: str = "vm1") -> str:
    return _rid(rig, f"/providers/Microsoft.Compute/virtualMachines/{name}")


def _resource(rig, resource_id: str):
    with rig.sandbox.world.lock:
        return rig.sandbox.world.get(resource_id)


def _expected_ids(rig) -> set[str]:
    ids = {
        _rid(rig),
        _net(rig, "virtualNetworks", "vm1-vnet"),
        _net(rig, "virtualNetworks", "vm1-vnet") + "/subnets/vm1-subnet",
        _net(rig, "networkSecurityGroups", "vm1-nsg"),
        _net(rig, "publicIPAddresses", "vm1-ip"),
        _net(rig, "networkInterfaces", "vm1-nic"),
        _vm_id(rig),
    }
    return {i.lower() for i in ids}


def _create(c, **extra: str):
    return c.post("/vm/create", params={"rg": "demo", "vmname": "vm1", "pw": PW, **extra})


def test_vm_create_makes_what_az_vm_create_makes_and_prints_the_ip_and_ids(azure_rig):
    """vm/create makes the group, vnet+subnet, NSG (SSH), static IP, NIC and VM, and says so."""
    rig = azure_rig()
    with rig.srv.client() as c:
        r = _create(c)
    assert _result(r.text)["state"] == "succeeded", r.text
    assert rig.resource_ids() == _expected_ids(rig)
    ip = _resource(rig, _net(rig, "publicIPAddresses", "vm1-ip"))
    address = ip.properties["ipAddress"]
    assert ip.extra["sku"]["name"] == "Standard"
    assert ip.properties["publicIPAllocationMethod"] == "Static"
    assert f"public address   {address}" in r.text
    assert f"ssh azureuser@{address}" in r.text
    for resource_id in _expected_ids(rig) - {_rid(rig).lower()}:
        if "/subnets/" not in resource_id:
            assert resource_id in r.text.lower()
    nic = _resource(rig, _net(rig, "networkInterfaces", "vm1-nic"))
    config = nic.properties["ipConfigurations"][0]["properties"]
    assert config["publicIPAddress"]["id"].lower() == ip.id.lower()
    assert config["subnet"]["id"].lower().endswith("/subnets/vm1-subnet")
    assert nic.properties["networkSecurityGroup"]["id"].lower().endswith("/vm1-nsg")
    nsg = _resource(rig, _net(rig, "networkSecurityGroups", "vm1-nsg"))
    rule = nsg.properties["securityRules"][0]["properties"]
    assert (rule["destinationPortRange"], rule["access"], rule["direction"]) == (
        "22", "Allow", "Inbound",
    )  # fmt: skip
    vm = _resource(rig, _vm_id(rig))
    assert vm.properties["hardwareProfile"]["vmSize"] == "Standard_B2s"
    assert vm.properties["osProfile"]["adminUsername"] == "azureuser"
    assert vm.properties["storageProfile"]["osDisk"]["name"] == "vm1-osdisk"
    assert vm.properties["storageProfile"]["imageReference"]["offer"] == (
        "0001-com-ubuntu-server-jammy"
    )


def test_vm_create_sends_independent_network_resources_in_parallel(azure_rig):
    """The vnet, NSG and public IP are all requested before any of them is done."""
    rig = azure_rig(arm_polling_interval=0.05)
    rig.sandbox.controls.set_latency({"Microsoft.Network/*/write": 0.3})
    with rig.srv.client() as c:
        r = _create(c)
    assert _result(r.text)["state"] == "succeeded", r.text
    lines = r.text.splitlines()
    first_done = min(i for i, line in enumerate(lines) if line.startswith("created virtual"))
    for what in ("virtual network vm1-vnet", "network security group vm1-nsg", "public IP"):
        assert any(what in line for line in lines[:first_done] if line.startswith("creating")), what
    # The NIC needs all three: it is asked for only once they are done.
    nic = lines.index("creating network interface vm1-nic …")
    assert sum(line.startswith("created ") for line in lines[:nic]) == 4  # the group too


def test_vm_create_again_converges_on_the_same_resources(azure_rig):
    """A second vm/create with the same parameters succeeds and changes nothing."""
    rig = azure_rig()
    with rig.srv.client() as c:
        first = _create(c)
        before = rig.resource_ids()
        address = _resource(rig, _net(rig, "publicIPAddresses", "vm1-ip")).properties["ipAddress"]
        second = _create(c)
    assert _result(first.text)["state"] == "succeeded", first.text
    assert _result(second.text)["state"] == "succeeded", second.text
    assert rig.resource_ids() == before == _expected_ids(rig)
    assert f"ssh azureuser@{address}" in second.text
    assert "creating resource group" not in second.text


def test_vm_create_after_a_failed_run_finishes_the_job(azure_rig):
    """Re-running vm/create after a failed provisioning completes the same resources."""
    rig = azure_rig(arm_retry_total=0)
    rig.sandbox.controls.inject(Fault.provision_failed("Microsoft.Network/publicIPAddresses/write"))
    with rig.srv.client() as c:
        failed = _create(c)
        again = _create(c)
    assert _result(failed.text)["state"] == "failed", failed.text
    assert _result(again.text)["state"] == "succeeded", again.text
    assert rig.resource_ids() == _expected_ids(rig)
    assert _resource(rig, _net(rig, "publicIPAddresses", "vm1-ip")).provisioning_state == (
        "Succeeded"
    )


def test_bad_parameters_are_all_refused_with_422_before_any_azure_call(azure_rig):
    """Bad names, size, image, user and a weak password: one 422 listing each, no ARM call."""
    rig = azure_rig()
    params = {
        "rg": "bad/group.",
        "vmname": "-vm_1",
        "pw": "weakpassword",
        "admin": "root",
        "size": "B2s",
        "image": "Windows95",
        "location": "Mars 1!",
        "ssh_key": "ssh-rsa not-a-key",
    }
    with rig.srv.client() as c:
        r = c.post("/vm/create", params=params)
        runs = c.get("/_runs").json()
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    reasons = {e["name"]: e["reason"] for e in r.json()["errors"]}
    assert set(reasons) == set(params)
    assert "resource group name" in reasons["rg"]
    assert "VM name" in reasons["vmname"]
    assert "3 of" in reasons["pw"]
    assert "reserved" in reasons["admin"]
    assert "Standard_B2s" in reasons["size"]
    assert "Ubuntu2204" in reasons["image"]
    assert "region" in reasons["location"]
    assert "SSH public key" in reasons["ssh_key"]
    assert "weakpassword" not in r.text
    assert rig.sandbox.controls.arm_calls == {}
    assert rig.sandbox.controls.token_requests == {}
    assert runs["runs"] == []


def test_exactly_one_of_password_and_ssh_key_is_required(azure_rig):
    """Neither or both of pw and ssh_key are a 422 naming the rule; no run, no ARM call."""
    rig = azure_rig()
    with rig.srv.client() as c:
        neither = c.post("/vm/create", params={"rg": "demo", "vmname": "vm1"})
        both = _create(c, ssh_key=SSH_KEY)
        windows = c.post(
            "/vm/create",
            params={"rg": "demo", "vmname": "a-long-windows-name", "pw": PW,
                    "image": "Win2022Datacenter"},
        )  # fmt: skip
        runs = c.get("/_runs").json()["runs"]
    for r, word in ((neither, "neither"), (both, "both")):
        assert r.status_code == 422, r.text
        reason = {e["name"]: e["reason"] for e in r.json()["errors"]}["pw"]
        assert "give exactly one of pw" in reason and f"; {word} given" in reason
    assert windows.status_code == 422
    assert windows.json()["errors"] == [
        {
            "name": "vmname",
            "reason": "a Windows VM name is at most 15 characters; 'a-long-windows-name' has 19",
        }
    ]
    assert runs == []
    assert rig.sandbox.controls.arm_calls == {}


def test_vm_create_with_an_ssh_key_disables_password_login(azure_rig):
    """With ssh_key, the VM gets the key in authorized_keys and no password login."""
    rig = azure_rig()
    with rig.srv.client() as c:
        r = c.post(
            "/vm/create",
            json={"rg": "demo", "vmname": "vm1", "ssh_key": SSH_KEY, "image": "Debian12"},
        )
    assert _result(r.text)["state"] == "succeeded", r.text
    linux = _resource(rig, _vm_id(rig)).properties["osProfile"]["linuxConfiguration"]
    assert linux["disablePasswordAuthentication"] is True
    assert linux["ssh"]["publicKeys"] == [
        {"path": "/home/azureuser/.ssh/authorized_keys", "keyData": SSH_KEY}
    ]


def test_the_password_appears_in_no_stream_record_or_file(azure_rig, caplog):
    """pw reaches ARM but no text or SSE stream, run record, log, event replay or state file."""
    caplog.set_level(logging.DEBUG)
    rig = azure_rig()
    with rig.srv.client() as c:
        text = _create(c)
        sse = c.post(
            "/vm/create",
            data={"rg": "demo", "vmname": "vm1", "pw": PW},
            headers={"Accept": "text/event-stream"},
        )
        answers = [text, sse]
        for r in (text, sse):
            run_id = r.headers["x-run-id"]
            answers += [
                c.get(f"/_runs/{run_id}"),
                c.get(f"/_runs/{run_id}/log"),
                c.get(f"/_runs/{run_id}/events"),
            ]
        answers.append(c.get("/_runs"))
    assert _result(text.text)["state"] == "succeeded", text.text
    assert done_of(parse_sse(sse.text))["state"] == "succeeded"
    for r in answers:
        assert PW not in r.text, r.url
    assert answers[2].json()["params"]["pw"] == "***"
    rig.srv.stop()
    assert files_containing(rig.srv.state_dir, PW.encode()) == []
    # No server-side log line (the test's own HTTP client logs its URLs: not counted).
    server_side = [r for r in caplog.records if r.name.startswith(("runner", "uvicorn", "azure"))]
    assert server_side
    assert not [r for r in server_side if PW in r.getMessage() or PW in str(r.__dict__)]
    # Like ARM, the sandbox keeps no password in what it shows back.
    vm = rig.sandbox.world.resources
    assert not [k for k, v in vm.items() if PW in json.dumps(v.render(), default=str)]


def test_failed_provisioning_fails_the_run_and_says_what_is_left(azure_rig):
    """A public IP whose provisioning ends Failed fails the run with the reason and an account."""
    rig = azure_rig(arm_retry_total=0)
    rig.sandbox.controls.inject(Fault.provision_failed("Microsoft.Network/publicIPAddresses/write"))
    with rig.srv.client() as c:
        r = _create(c)
        record = c.get(f"/_runs/{r.headers['x-run-id']}").json()
    assert _result(r.text)["state"] == "failed", r.text
    assert "failed creating public IP address vm1-ip" in r.text
    assert "ProvisioningFailed" in r.text and "Traceback" not in r.text
    assert "vm/create stopped by an error" in r.text
    assert "to remove: vm/delete?rg=demo&vmname=vm1" in r.text
    assert "ProvisioningFailed" in record["reason"]
    # Nothing was built on the failed IP.
    assert _vm_id(rig).lower() not in rig.resource_ids()
    assert _net(rig, "networkInterfaces", "vm1-nic").lower() not in rig.resource_ids()


def test_throttled_call_is_retried_and_the_run_succeeds(azure_rig):
    """A 429 with Retry-After 1 on the VM PUT is retried by the SDK; the run succeeds."""
    rig = azure_rig()
    rig.sandbox.controls.inject(
        Fault.throttle("Microsoft.Compute/virtualMachines/write", retry_after=1)
    )
    with rig.srv.client() as c:
        r = _create(c)
    assert _result(r.text)["state"] == "succeeded", r.text
    assert rig.sandbox.controls.arm_calls["Microsoft.Compute/virtualMachines/write"] == 2
    assert _vm_id(rig).lower() in rig.resource_ids()


def _wait_for_log(c, run_id: str, needle: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while True:
        log = c.get(f"/_runs/{run_id}/log").text
        if needle in log:
            return log
        assert time.monotonic() < deadline, log
        time.sleep(0.05)


def test_cancelled_create_says_what_it_left_behind(azure_rig, monkeypatch):
    """Cancelling while the VM is being made ends the run cancelled, listing what exists."""
    monkeypatch.setattr(operations, "PROGRESS_EVERY", 0.25)
    rig = azure_rig(arm_polling_interval=0.05)
    rig.sandbox.controls.set_latency({"Microsoft.Compute/virtualMachines/write": 5})
    with rig.srv.client() as c:
        started = c.post(
            "/vm/create", params={"rg": "demo", "vmname": "vm1", "pw": PW}, headers=ASYNC
        )
        assert started.status_code == 202, started.text
        run_id = started.headers["x-run-id"]
        # While it waits, it says for how long, with the share of steps done.
        _wait_for_log(c, run_id, "runner: creating virtual machine vm1: 1 s (83%)")
        c.post(f"/_runs/{run_id}/cancel")
        record = c.get(f"/_runs/{run_id}").json()
        log = c.get(f"/_runs/{run_id}/log").text
    assert record["state"] == "cancelled", record
    assert "vm/create cancelled after" in log
    left, _, rest = log.partition("created, and left in place:")[2].partition("in progress")
    for what in ("virtual network vm1-vnet", "network interface vm1-nic", "public IP address"):
        assert what in left, log
    assert "virtual machine vm1" in rest.split("to finish")[0], log
    assert "run vm/create again with the same parameters" in log
    assert "state=cancelled" in log


def test_missing_role_fails_fast_naming_action_scope_and_the_fix(azure_rig):
    """Without Contributor the run fails in seconds with the action, scope and az command."""
    rig = azure_rig(arm_retry_total=0)
    sb = rig.sandbox
    assert sb.revoke(sb.system_identity.principal_id) >= 1
    with rig.srv.client() as c:
        started = time.monotonic()
        r = _create(c)
        took = time.monotonic() - started
    assert _result(r.text)["state"] == "failed", r.text
    assert took < 5
    assert sb.system_identity.principal_id in r.text
    assert "Microsoft.Resources/subscriptions/resourceGroups/read" in r.text
    assert f"/subscriptions/{sb.subscription_id}/resourceGroups/demo" in r.text
    assert (
        f"az role assignment create --assignee-object-id {sb.system_identity.principal_id}"
        in r.text
    )
    assert "vm/create needs the Contributor role on" in r.text
    assert "Traceback" not in r.text


def test_vm_list_stop_start_and_delete(azure_rig):
    """vm/list shows the VM's power state; stop deallocates, start runs, delete removes all."""
    rig = azure_rig()
    with rig.srv.client() as c:
        assert _result(_create(c).text)["state"] == "succeeded"
        listed = c.post("/vm/list", params={"rg": "demo", "as_json": "true"})
        stopped = c.post("/vm/stop", params={"rg": "demo", "vmname": "vm1"})
        listed_all = c.post("/vm/list")
        started = c.post("/vm/start", params={"rg": "demo", "vmname": "vm1"})
        deleted = c.post("/vm/delete", params={"rg": "demo", "vmname": "vm1"})
        again = c.post("/vm/delete", params={"rg": "demo", "vmname": "vm1"})
    rows = json.loads(listed.text.splitlines()[0])
    assert [(r["name"], r["resource_group"], r["size"], r["power"]) for r in rows] == [
        ("vm1", "demo", "Standard_B2s", "running")
    ]
    assert "vm1: VM deallocated" in stopped.text
    assert "deallocated" in listed_all.text and "1 virtual machine(s)" in listed_all.text
    assert "vm1: VM running" in started.text
    assert _result(deleted.text)["state"] == "succeeded", deleted.text
    for what in ("virtual machine vm1", "network interface vm1-nic", "public IP address vm1-ip",
                 "network security group vm1-nsg", "virtual network vm1-vnet"):  # fmt: skip
        assert f"deleted {what}" in deleted.text
    assert "OS disk vm1-osdisk was deleted with the VM" in deleted.text
    assert rig.resource_ids() == {_rid(rig).lower()}
    assert "nothing to delete for vm1 in demo" in again.text


def test_vm_delete_keeps_network_resources_vm_create_did_not_make(azure_rig):
    """A vnet without vm/create's tag survives vm/delete, which names it as kept."""
    rig = azure_rig()
    with rig.srv.client() as c:
        assert _result(_create(c).text)["state"] == "succeeded"
        vnet_id = _net(rig, "virtualNetworks", "vm1-vnet")
        with rig.sandbox.world.lock:
            rig.sandbox.world.get(vnet_id).tags = {}
        r = c.post("/vm/delete", params={"rg": "demo", "vmname": "vm1"})
    assert _result(r.text)["state"] == "succeeded", r.text
    assert "kept virtual network vm1-vnet: not made by vm/create for vm1" in r.text
    assert vnet_id.lower() in rig.resource_ids()
    assert _vm_id(rig).lower() not in rig.resource_ids()


def test_vm_delete_cleans_up_after_a_failed_create(azure_rig):
    """After a VM whose provisioning failed, vm/delete removes the VM and its network."""
    rig = azure_rig(arm_retry_total=0)
    rig.sandbox.controls.inject(Fault.provision_failed("Microsoft.Compute/virtualMachines/write"))
    with rig.srv.client() as c:
        failed = _create(c)
        r = c.post("/vm/delete", params={"rg": "demo", "vmname": "vm1"})
    assert _result(failed.text)["state"] == "failed", failed.text
    assert "created, and left in place:" in failed.text
    assert _result(r.text)["state"] == "succeeded", r.text
    assert rig.resource_ids() == {_rid(rig).lower()}
