"""The web page in real Chromium: a VM created from the form against the sandbox, its log
live through a network cut and a reload, a long run cancelled, both found in the history."""

from __future__ import annotations

import time

import httpx
from playwright.sync_api import expect

from tests.conftest import wait_final
from tests.ui.conftest import shot

PW = "Page-Passw0rd-2026"


def _log_lines(page) -> list[str]:
    return page.inner_text("pre.log").splitlines()


def _wait_lines(page, n: int, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while len(_log_lines(page)) < n:
        assert time.monotonic() < deadline, _log_lines(page)
        time.sleep(0.05)


def test_vm_create_from_the_form_is_checked_twice_streams_live_and_resumes_exactly(
    serve, page, switch_proxy
):
    """A bad VM name is refused by the browser, and by the server once the browser's check
    is bypassed; the good form starts vm/create on the sandbox, whose lines arrive while
    it runs; through a network cut and a reload the page shows each stored line once."""
    srv = serve(builtin_jobs=True, sandbox=True, sandbox_latency=0.8)
    proxy = switch_proxy(srv)
    starts: list[str] = []
    streams: list = []
    page.on("request", lambda r: starts.append(r.url) if "/_ui/start/" in r.url else None)
    page.on("request", lambda r: streams.append(r) if r.resource_type == "eventsource" else None)

    page.goto(f"https://127.0.0.1:{proxy.port}/")
    page.wait_for_selector('a[href="#/job/vm/create"]')
    shot(page, "catalogue")
    page.click('a[href="#/job/vm/create"]')
    expect(page.locator("#f-pw")).to_have_attribute("type", "password")
    page.fill("#f-rg", "web")
    page.fill("#f-vmname", "-bad-")
    page.fill("#f-pw", PW)
    page.click("button[type=submit]")
    expect(page.locator('.error[data-for="vmname"]')).not_to_be_empty()
    assert starts == [], "the browser sent a form it should have refused"

    # Bypassing the browser's check: the server refuses the same value, said by the field.
    page.evaluate("document.querySelector('form.job-form').noValidate = true")
    page.click("button[type=submit]")
    expect(page.locator('.error[data-for="vmname"]')).to_contain_text(
        "a VM name must start with a letter or a digit"
    )
    expect(page.locator(".problem")).to_contain_text("nothing was run")
    assert len(starts) == 1

    page.evaluate("document.querySelector('form.job-form').noValidate = false")
    page.fill("#f-vmname", "web-1")
    page.fill("#f-pw", PW)  # a refused form forgets nothing but never shows the secret
    page.click("button[type=submit]")
    page.wait_for_url("**#/run/*")
    run_id = page.url.split("#/run/")[1]

    with srv.client() as api:
        _wait_lines(page, 2)
        assert api.get(f"/_runs/{run_id}").json()["state"] == "running", "lines came late"
        shot(page, "live-run")
        assert proxy.cut() >= 1
        expect(page.locator(".conn")).to_contain_text("resuming", timeout=5000)
        shown_before_reload = len(_log_lines(page))
        _wait_lines(page, shown_before_reload + 1)  # resumed: new lines again
        page.reload()
        record = wait_final(api, run_id, within=60)
        stored = api.get(f"/_runs/{run_id}/log").text.splitlines()
    page.wait_for_selector("text=state=succeeded")
    assert record["state"] == "succeeded", record
    assert _log_lines(page) == stored, "a line was lost or shown twice"
    assert any("created virtual machine web-1" in line for line in stored)
    assert PW not in page.content()
    # The stream after the reload asked for what came after the lines kept in the tab.
    after = [int(r.url.split("last_event_id=")[1]) for r in streams if "last_event_id=" in r.url]
    assert after and after[-1] > 0, [r.url for r in streams]
    # After the cut the browser resumed by itself with Last-Event-ID.
    resumed = [r.all_headers().get("last-event-id") for r in streams]
    assert any(v and int(v) > 0 for v in resumed), resumed


def test_a_long_run_is_cancelled_from_its_page_and_both_runs_are_in_the_filtered_history(
    serve, browser, make_htpasswd
):
    """alice starts py/sleep and py/lines from the page, cancels the sleep; the history
    lists both, filters by job, state and who started them, and pages."""
    srv = serve(htpasswd=make_htpasswd(alice="alice-pw-123"))
    context = browser.new_context(
        ignore_https_errors=True,
        http_credentials={"username": "alice", "password": "alice-pw-123"},
        viewport={"width": 1280, "height": 860},
    )
    page = context.new_page()
    try:
        page.goto(srv.url + "/#/job/py/lines")
        page.fill("#f-n", "3")
        page.click("button[type=submit]")
        page.wait_for_selector("text=state=succeeded")
        lines_id = page.url.split("#/run/")[1]

        page.goto(srv.url + "/#/job/py/sleep")
        page.fill("#f-seconds", "30")
        page.click("button[type=submit]")
        page.wait_for_selector("pre.log >> text=start")
        sleep_id = page.url.split("#/run/")[1]
        page.click("text=Cancel run")
        page.wait_for_selector("text=state=cancelled")
        expect(page.locator("pre.log")).to_contain_text("cleaning up after cancel")
        expect(page.locator("dl.record")).to_contain_text("user:alice")

        page.click("text=History")
        page.wait_for_selector("table.runs")
        shot(page, "history")
        rows = page.locator("table.runs tbody tr")
        expect(rows).to_have_count(2)
        page.select_option("#h-state", "cancelled")
        page.click("text=Filter")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text(sleep_id)
        page.goto(srv.url + "/#/runs?job=py/lines")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text(lines_id)
        page.goto(srv.url + "/#/runs?caller=user:bob")
        expect(page.locator("text=No runs match.")).to_be_visible()
        page.goto(srv.url + "/#/runs?caller=user:alice")
        expect(rows).to_have_count(2)
    finally:
        context.close()


def test_history_pages_through_older_runs(serve, page):
    """With more runs than a page holds (20), "older →" shows the rest, then "newest"."""
    srv = serve()
    with srv.client() as api:
        ids = [api.post("/py/lines?n=1", headers={"Prefer": "wait"}).headers["x-run-id"]
               for _ in range(23)]  # fmt: skip
    page.goto(srv.url + "/#/runs")
    rows = page.locator("table.runs tbody tr")
    expect(rows).to_have_count(20)
    expect(rows.first).to_contain_text(ids[-1])
    page.click("text=older →")
    expect(rows).to_have_count(3)
    expect(rows.last).to_contain_text(ids[0])
    page.click("text=← newest")
    expect(rows).to_have_count(20)


def test_output_is_shown_as_text_a_printed_script_never_runs(serve, page):
    """A script printing <script> and an <img onerror> shows them as text; neither runs,
    and the page itself breaks no rule of its Content-Security-Policy."""
    srv = serve()
    hostile = (
        "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"
    )
    page.goto(srv.url + "/#/job/sh/echo")
    page.fill("#f-_extra", f"name={hostile}")
    page.click("button[type=submit]")
    page.wait_for_selector("text=state=succeeded")
    expect(page.locator("pre.log")).to_contain_text(f"name={hostile}")
    assert page.locator("pre.log img, pre.log script").count() == 0
    assert page.title() == "runner"
    assert not [line for line in page.console_lines if "Content Security Policy" in line]
    with httpx.Client(verify=False) as c:
        served = c.get(srv.url + "/")
    assert "script-src 'self'" in served.headers["content-security-policy"]
    assert "<script>" not in served.text and "onload" not in served.text


def test_a_declared_scripts_form_has_its_parameters_and_starts_it(serve, page):
    """# runner-param lines become the form: required fields, a choice list, a password
    field for the secret, no free name=value box; the run gets the values as env vars."""
    srv = serve()
    page.goto(srv.url + "/#/job/sh/declared")
    expect(page.locator("#f-vmname")).to_have_attribute("required", "")
    expect(page.locator("#f-token")).to_have_attribute("type", "password")
    expect(page.locator("#f-size option")).to_have_text(["—", "small", "large"])
    expect(page.locator("#f-size")).to_have_value("small")  # its default
    assert page.locator("#f-_extra").count() == 0
    page.fill("#f-vmname", "Bad_Name")
    page.fill("#f-rg", "r1")
    page.click("button[type=submit]")
    expect(page.locator('.error[data-for="vmname"]')).not_to_be_empty()
    page.fill("#f-vmname", "web-1")
    page.select_option("#f-size", "large")
    page.fill("#f-token", "tok-98765")
    page.click("button[type=submit]")
    page.wait_for_selector("text=state=succeeded")
    expect(page.locator("pre.log")).to_contain_text(
        "vmname=web-1 rg=r1 size=large note=unset token=***"
    )
