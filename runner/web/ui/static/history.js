// The run history: filters (job, state, who started it) kept in the address, and paging
// through `next` links, newest first.
import { api, el, failure, seconds, show, stateBadge, when } from "./dom.js";

const STATES = ["", "queued", "running", "succeeded", "failed", "cancelled", "timed_out", "interrupted"];
const PAGE = 20;

export async function historyPage(main, query) {
  const filters = { job: query.get("job") || "", state: query.get("state") || "", caller: query.get("caller") || "" };
  const before = query.get("before") || "";
  let jobs = [];
  try {
    jobs = (await api("_jobs")).jobs.map((j) => j.path.slice(1));
  } catch {
    // The filter still works as a text field.
  }
  const jobField = el("select", { name: "job", id: "h-job" },
    el("option", { value: "" }, "any job"),
    jobs.map((j) => el("option", { value: j, selected: j === filters.job }, j)));
  const stateField = el("select", { name: "state", id: "h-state" },
    STATES.map((s) => el("option", { value: s, selected: s === filters.state }, s || "any state")));
  const callerField = el("input", { name: "caller", id: "h-caller", value: filters.caller,
    placeholder: "user:alice, token:ci, webhook:github", size: 28 });
  const form = el("form", { class: "filters" },
    el("label", { for: "h-job" }, "Job "), jobField,
    el("label", { for: "h-state" }, " State "), stateField,
    el("label", { for: "h-caller" }, " Started by "), callerField,
    el("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `#/runs?${new URLSearchParams(
      Object.entries({ job: jobField.value, state: stateField.value, caller: callerField.value.trim() })
        .filter(([, v]) => v))}`;
  });
  let page;
  try {
    page = await api("_runs", { query: { ...filters, limit: PAGE, before } });
  } catch (error) {
    show(main, el("h1", {}, "History"), form, failure(error));
    return;
  }
  const rows = page.runs.map((r) => el("tr", {},
    el("td", {}, el("a", { href: `#/run/${r.id}` }, el("code", {}, r.id))),
    el("td", {}, `/${r.job}`),
    el("td", {}, stateBadge(r.state)),
    el("td", {}, r.caller),
    el("td", {}, when(r.created)),
    el("td", { class: "num" }, seconds(r.duration)),
    el("td", { class: "num" }, r.exit_code ?? "–")));
  const table = rows.length
    ? el("table", { class: "runs" },
      el("thead", {}, el("tr", {}, ["run", "job", "state", "started by", "created", "duration", "exit"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows))
    : el("p", { class: "muted" }, "No runs match.");
  const paging = el("p", { class: "paging" });
  if (before) paging.append(el("a", { href: `#/runs?${params(filters, "")}` }, "← newest"), " ");
  if (page.next) {
    const next = new URLSearchParams(page.next.split("?")[1] || "").get("before");
    paging.append(el("a", { href: `#/runs?${params(filters, next)}`, rel: "next" }, "older →"));
  }
  show(main, el("h1", {}, "History"), form, table, paging);
}

function params(filters, before) {
  return new URLSearchParams(Object.entries({ ...filters, before }).filter(([, v]) => v));
}
