"""Script jobs: parameters from form and JSON bodies, and parameters a script declares in
its header (``# runner-param:``), through a real server."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from runner.policy import JobPolicy


def _runs(srv) -> list[dict]:
    with srv.client() as c:
        return c.get("/_runs").json()["runs"]


def test_a_declared_script_answers_422_listing_each_missing_or_bad_parameter(serve):
    """Bad name, a choice not offered, a required one missing, one not declared: one 422
    naming all four, before any run exists."""
    srv = serve()
    with srv.client() as c:
        r = c.post("/sh/declared?vmname=Web_1&size=huge&colour=red")
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    errors = {e["name"]: e["reason"] for e in r.json()["errors"]}
    assert errors == {
        "vmname": "must match ^[a-z][a-z0-9-]{0,14}$",
        "size": "must be one of small, large",
        "rg": "required",
        "colour": "unknown parameter; this job takes: vmname, rg, size, note, token",
    }
    assert _runs(srv) == []


def test_a_form_body_reaches_the_script_as_parameters_and_as_dollar_one(serve):
    """curl -d 'vmname=f1&rg=r1': $vmname and $rg set, the default filled in, $1 the body."""
    srv = serve()
    with srv.client() as c:
        r = c.post("/sh/declared", content=b"vmname=f1&rg=r1", headers={
            "Content-Type": "application/x-www-form-urlencoded", "Prefer": "wait"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.text.splitlines()[:2] == [
        "vmname=f1 rg=r1 size=small note=unset token=",
        "body=vmname=f1&rg=r1",
    ]


def test_a_json_body_gives_the_declared_fields_and_stays_dollar_one(serve):
    """Top-level fields named like a declared parameter are parameters (a number as its
    text); the rest of the document is left to $1, whatever curl labelled it."""
    srv = serve()
    doc = {"vmname": "j1", "rg": "r-2", "size": "large", "note": 42, "build": {"id": 7}}
    body = json.dumps(doc)
    with srv.client() as c:
        labelled = c.post("/sh/declared", content=body, headers={
            "Content-Type": "application/json", "Prefer": "wait"})  # fmt: skip
        # curl -d '{…}' without -H: labelled a form, but no form.
        by_curl = c.post("/sh/declared", content=body, headers={
            "Content-Type": "application/x-www-form-urlencoded", "Prefer": "wait"})  # fmt: skip
    for r in (labelled, by_curl):
        assert r.status_code == 200, r.text
        assert r.text.splitlines()[:2] == [
            "vmname=j1 rg=r-2 size=large note=42 token=",
            f"body={body}",
        ]


def test_a_secret_declared_parameter_is_masked_and_never_recorded(serve):
    """token is declared secret: the run records ***, its output shows *** too."""
    srv = serve()
    with srv.client() as c:
        r = c.post("/sh/declared", data={"vmname": "s1", "rg": "r1", "token": "tok-12345"},
                   headers={"Prefer": "wait"})  # fmt: skip
        record = c.get(f"/_runs/{r.headers['x-run-id']}").json()
    assert r.status_code == 200, r.text
    assert "tok-12345" not in r.text and "token=***" in r.text
    assert record["params"] == {"vmname": "s1", "rg": "r1", "size": "small", "token": "***"}


def test_a_name_in_the_query_and_the_form_is_refused(serve):
    """As for Python jobs: a name given twice is an error, not a silent choice."""
    srv = serve()
    with srv.client() as c:
        r = c.post("/sh/declared?rg=a", data={"vmname": "v", "rg": "b"})
    assert r.status_code == 422
    assert r.json()["errors"] == [{"name": "rg", "reason": "given more than once"}]


def test_get_describes_the_declared_parameters_as_json_schema(serve):
    """Required, pattern, choices, default, description, secret: what the page's form and
    OpenAPI read."""
    srv = serve()
    with srv.client() as c:
        described = c.get("/sh/declared").json()
        openapi = c.get("/_openapi.json").json()
    schema = described["parameters"]
    assert described["kind"] == "script"
    assert described["description"].startswith("Create a VM")
    assert schema["required"] == ["vmname", "rg"]
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert props["vmname"] == {"type": "string", "pattern": "^[a-z][a-z0-9-]{0,14}$",
                               "description": "the VM's name"}  # fmt: skip
    assert props["size"] == {"type": "string", "enum": ["small", "large"], "default": "small"}
    assert props["note"]["description"] == "free text, spaces and all"
    assert props["token"] == {"type": "string", "description": "an API token",
                              "writeOnly": True, "x-secret": True}  # fmt: skip
    post = openapi["paths"]["/sh/declared"]["post"]
    assert "application/x-www-form-urlencoded" in post["requestBody"]["content"]


@pytest.mark.parametrize(
    ("body", "ctype"),
    [
        (b"name=n1&code=0", "application/x-www-form-urlencoded"),
        (b'{"name": "ignored", "x": [1]}', "application/x-www-form-urlencoded"),
        (b"some text = with signs", "application/x-www-form-urlencoded"),
        (b'{"name": "ignored"}', "application/json"),
    ],
)
def test_an_undeclared_script_takes_a_forms_fields_and_keeps_every_body_as_dollar_one(
    serve, body, ctype
):
    """webhookd style: a real form's fields are env vars; JSON (however labelled) and
    text are $1 only, as before."""
    srv = serve()
    with srv.client() as c:
        r = c.post("/sh/echo", content=body, headers={"Content-Type": ctype, "Prefer": "wait"})
    assert r.status_code == 200, r.text
    lines = r.text.splitlines()
    assert lines[0] == ("name=n1" if body.startswith(b"name=") else "name=")
    assert f"body={body.decode()}" in lines


def test_a_webhook_deliverys_form_is_dollar_one_only_its_reply_url_is_no_parameter(
    serve, tmp_path, monkeypatch
):
    """A Slack command is a form holding a response_url and a token: to a script it stays
    a payload ($1), never recorded parameters anyone reading runs could see."""
    secret = "8f742231b10e8888abcd99yyyzzz85a5"
    monkeypatch.setenv("SLACK_HOOK", secret)
    srv = serve(policies=(JobPolicy("sh/echo", verify="slack", secrets=("env:SLACK_HOOK",)),))
    reply = b"https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1%2F2%2Fsecret"
    body = b"token=legacy-verification&command=%2Fdeploy&text=site&name=n1&response_url=" + reply
    ts = str(int(time.time()))
    sig = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    headers = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={sig}",
               "Content-Type": "application/x-www-form-urlencoded", "Prefer": "wait"}  # fmt: skip
    with srv.client() as c:
        r = c.post("/sh/echo", content=body, headers=headers)
        record = c.get(f"/_runs/{r.headers['x-run-id']}").json()
    assert r.status_code == 200, r.text
    assert r.text.splitlines()[0] == "name="
    assert f"body={body.decode()}" in r.text.splitlines()
    assert record["params"] == {}
