// The page: a hash router over four views. Every view reads the API the way any client
// does; the page's own POSTs (start, cancel) carry its CSRF token (dom.js).
import { api, el, failure, Problem, show } from "./dom.js";
import { buildForm } from "./form.js";
import { historyPage } from "./history.js";
import { runPage } from "./live.js";

const main = document.getElementById("main");
let leave = () => {};

async function catalogue() {
  const { jobs } = await api("_jobs");
  const items = jobs.map((job) => el("li", {},
    el("a", { href: `#/job${job.path}` }, job.path),
    el("span", { class: "kind" }, job.kind),
    el("span", { class: "summary" }, (job.description || "").split("\n")[0])));
  show(main, el("h1", {}, "Jobs"), el("ul", { class: "jobs" }, items));
}

async function jobPage(path) {
  const job = await api(path);
  const message = el("div", { role: "alert", class: "problem", hidden: true });
  const { form, showError, forgetSecrets } = buildForm(job.parameters, async (params) => {
    message.hidden = true;
    try {
      const run = await api(`_ui/start/${path}`, { method: "POST", json: { params } });
      forgetSecrets();
      location.hash = `#/run/${run.id}`;
    } catch (error) {
      const errors = error instanceof Problem ? error.body.errors || [] : [];
      for (const { name, reason } of errors) showError(name, reason);
      message.textContent = error.message;
      message.hidden = false;
    }
  });
  const facts = [job.timeout && `timeout ${job.timeout} s`, job.lock && `one at a time per ${job.lock}`].filter(Boolean);
  show(main,
    el("h1", {}, job.path, " ", el("span", { class: "kind" }, job.kind)),
    el("pre", { class: "description" }, job.description || ""),
    facts.length ? el("p", { class: "muted" }, facts.join(" · ")) : null,
    form, message,
    el("p", {}, el("a", { href: `#/runs?job=${encodeURIComponent(path)}` }, "runs of this job")));
}

async function route() {
  leave();
  leave = () => {};
  const hash = location.hash.replace(/^#/, "") || "/";
  const [where, query] = hash.split("?");
  try {
    if (where.startsWith("/job/")) await jobPage(decodeURIComponent(where.slice(5)));
    else if (where.startsWith("/run/")) leave = await runPage(main, decodeURIComponent(where.slice(5)));
    else if (where === "/runs") await historyPage(main, new URLSearchParams(query || ""));
    else await catalogue();
  } catch (error) {
    show(main, failure(error));
  }
  document.body.dataset.view = where.split("/")[1] || "jobs";
}

window.addEventListener("hashchange", route);
route();
