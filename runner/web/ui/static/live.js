// One run: its record, trigger and links, a cancel button, and its log live over
// EventSource. The log resumes where it stopped: after a network drop the browser sends
// Last-Event-ID by itself (or, when the stream failed for good, e.g. a proxy's 502, this
// reconnects with ?last_event_id=); after a reload the lines already shown come back from
// sessionStorage and the stream resumes after the last of them. An event whose id was seen
// already is dropped, so no line is ever shown twice.
import { api, el, failure, seconds, show, stateBadge, url, when } from "./dom.js";

const FINAL = new Set(["succeeded", "failed", "cancelled", "timed_out", "interrupted"]);
const CACHE_LIMIT = 2_000_000; // characters kept per run for a reload; beyond, replay all

function cached(id) {
  try {
    const found = JSON.parse(sessionStorage.getItem(`runner.log.${id}`) || "null");
    return found && Array.isArray(found.events) ? found : null;
  } catch {
    return null;
  }
}

class Log {
  constructor(id, pre, onState) {
    this.id = id;
    this.pre = pre;
    this.onState = onState;
    this.last = 0;
    this.events = [];
    this.size = 0;
    this.dirty = false;
    this.ended = false;
  }

  add(seq, kind, data) {
    if (seq <= this.last) return; // a replay's overlap: shown already
    this.last = seq;
    this.render(kind, data);
    if (this.size >= 0) {
      this.events.push([seq, kind, data]);
      this.size += data.length + 16;
      if (this.size > CACHE_LIMIT) this.size = -1;
      this.dirty = true;
    }
  }

  render(kind, data) {
    let line = null;
    let cls = kind;
    if (kind === "output" || kind === "error") line = data;
    else if (kind === "status" || kind === "done" || kind === "run") {
      const body = JSON.parse(data);
      if (kind === "status") {
        const msg = body.progress || body.message;
        if (body.state) this.onState(body.state);
        if (msg) line = `runner: ${msg}${body.percent != null ? ` (${Math.round(body.percent)}%)` : ""}`;
      } else if (kind === "done") {
        this.ended = true;
        this.onState(body.state, body);
        if (body.reason && body.state !== "succeeded") this.pre.append(el("span", { class: "status" }, `runner: ${body.reason}\n`));
        const code = body.exit_code == null ? "-" : body.exit_code;
        line = `runner: run=${this.id} state=${body.state} exit=${code} duration=${(body.duration || 0).toFixed(3)}s`;
        cls = "status";
      }
    }
    if (line !== null) this.pre.append(el("span", { class: cls }, `${line}\n`));
  }

  save() {
    if (!this.dirty) return;
    this.dirty = false;
    const key = `runner.log.${this.id}`;
    try {
      if (this.size < 0) sessionStorage.removeItem(key);
      else sessionStorage.setItem(key, JSON.stringify({ last: this.last, events: this.events }));
    } catch {
      sessionStorage.removeItem(key); // storage full: a reload replays from the start
      this.size = -1;
    }
  }
}

function follow(log, status) {
  let source = null;
  let delay = 500;
  const saver = setInterval(() => log.save(), 250);
  const connect = () => {
    source = new EventSource(url(`_runs/${log.id}/events`, { last_event_id: log.last || "" }));
    source.onopen = () => { status.textContent = "live"; delay = 500; };
    for (const kind of ["run", "output", "error", "status", "done"]) {
      source.addEventListener(kind, (e) => {
        status.textContent = "live";
        log.add(Number(e.lastEventId), kind, e.data);
        if (kind === "done") stop();
      });
    }
    source.onerror = () => {
      if (log.ended) return;
      status.textContent = "connection lost: resuming…";
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(() => !log.ended && connect(), delay);
        delay = Math.min(delay * 2, 10_000);
      }
    };
  };
  const stop = () => {
    log.save();
    clearInterval(saver);
    if (source) source.close();
    status.textContent = "ended";
  };
  connect();
  return stop;
}

export async function runPage(main, id) {
  let record;
  try {
    record = await api(`_runs/${encodeURIComponent(id)}`);
  } catch (error) {
    show(main, el("h1", {}, `Run ${id}`), failure(error));
    return () => {};
  }
  const badge = el("span", {}, stateBadge(record.state));
  const cancel = el("button", { type: "button", class: "danger" }, "Cancel run");
  const note = el("span", { class: "muted", role: "status" });
  const status = el("span", { class: "muted conn" }, "connecting…");
  const pre = el("pre", { class: "log", "aria-label": "run output" });
  const details = el("dl", { class: "record" });
  const fill = (r) => details.replaceChildren(...facts(r).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  fill(record);
  const onState = async (state, done) => {
    badge.replaceChildren(stateBadge(state));
    if (FINAL.has(state)) {
      cancel.hidden = true;
      if (done) fill(await api(`_runs/${encodeURIComponent(id)}`).catch(() => record));
    }
  };
  cancel.hidden = FINAL.has(record.state);
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      const after = await api(`_ui/runs/${encodeURIComponent(id)}/cancel`, { method: "POST" });
      note.textContent = `cancel asked: ${after.state}`;
    } catch (error) {
      note.textContent = error.message;
      cancel.disabled = false;
    }
  });
  const links = el("p", { class: "links" },
    el("a", { href: `#/job/${record.job}` }, `/${record.job}`), " · ",
    el("a", { href: url(`_runs/${id}/log`).href }, "log as text"), " · ",
    el("a", { href: url(`_runs/${id}`).href }, "record (JSON)"), " · ",
    el("a", { href: url(`_runs/${id}/events`).href }, "events (SSE)"), " · ",
    el("a", { href: `#/runs?job=${encodeURIComponent(record.job)}` }, "runs of this job"),
  );
  show(main, el("h1", {}, "Run ", el("code", {}, id), " ", badge), links, details,
    el("div", { class: "toolbar" }, cancel, note, status), pre);
  const log = new Log(id, pre, onState);
  const saved = cached(id);
  if (saved) for (const [seq, kind, data] of saved.events) log.add(seq, kind, data);
  if (log.ended) {
    status.textContent = "ended";
    return () => {};
  }
  return follow(log, status);
}

function facts(r) {
  const trigger = r.trigger || {};
  const params = Object.entries(r.params || {}).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`);
  return [
    ["job", `/${r.job}`],
    ["state", r.state + (r.exit_code != null ? ` (exit ${r.exit_code})` : "")],
    ["started by", r.caller],
    ["trigger", [trigger.scheme, trigger.event, trigger.delivery_id, trigger.address && `from ${trigger.address}`].filter(Boolean).join(" · ")],
    ["parameters", params.join("  ") || "none"],
    ["created", when(r.created)],
    ["started", when(r.started)],
    ["finished", when(r.finished)],
    ["duration", seconds(r.duration)],
    ["why", r.reason || "–"],
  ];
}
