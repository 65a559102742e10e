// The operator's page: reads the admin JSON API with the session cookie every few seconds and
// renders it; POSTs carry the session's CSRF token. Text goes in with textContent, never as HTML.
"use strict";
const REFRESH_MS = 5000;
const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const CSRF_HEADER = document.querySelector('meta[name="csrf-header"]').content;
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") node.className = v;
    else if (k === "onclick") node.addEventListener("click", v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

async function api(path, options) {
  const opts = Object.assign({ credentials: "same-origin", headers: {} }, options || {});
  if (opts.method && opts.method !== "GET") {
    opts.headers[CSRF_HEADER] = CSRF;
    opts.headers["Content-Type"] = "application/json";
  }
  const r = await fetch(path, opts);
  if (r.status === 401) { window.location.reload(); throw new Error("session ended"); }
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.message || `${path}: HTTP ${r.status}`);
  return body;
}

function ago(iso) {
  if (!iso) return "never";
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  const a = Math.abs(s), sign = s < 0 ? "in " : "", tail = s < 0 ? "" : " ago";
  if (a < 90) return `${sign}${a} s${tail}`;
  if (a < 5400) return `${sign}${Math.round(a / 60)} min${tail}`;
  if (a < 129600) return `${sign}${Math.round(a / 3600)} h${tail}`;
  return `${sign}${Math.round(a / 86400)} d${tail}`;
}
const when = (iso) => el("span", { title: iso || "" }, ago(iso));
const pill = (text) => el("span", { class: `pill ${text}` }, text);
const num = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en"));
function fill(tbody, rows, emptyId) {
  tbody.replaceChildren(...rows);
  if (emptyId) $(emptyId).hidden = rows.length > 0;
}
function toast(text) { $("toast").textContent = text; }

async function act(button, path, body, done) {
  button.disabled = true;
  try {
    const answer = await api(path, { method: "POST", body: JSON.stringify(body || {}) });
    toast(done(answer));
  } catch (e) {
    toast(`failed: ${e.message}`);
  } finally {
    button.disabled = false;
    refresh();
  }
}

function renderHealth(h) {
  const s = $("overall-status");
  s.textContent = h.status;
  s.className = `status ${h.status}`;
  $("reasons").replaceChildren(...h.reasons.map((r) => el("li", {}, r)));
  const q = h.queue || {};
  $("queue").replaceChildren(...Object.keys(q).map((k) => el("div", { "data-testid": `queue-${k}` },
    el("span", {}, k), el("b", {}, num(q[k])))));
}

function runCell(run) {
  if (!run) return el("td", { class: "muted" }, "never");
  const bits = [pill(run.status), " ", when(run.finished_at || run.requested_at)];
  if (run.status === "succeeded") bits.push(el("div", { class: "muted small" }, `${num(run.objects)} objects, ${num(run.requests)} calls`));
  if (run.error) bits.push(el("div", { class: "muted small msg" }, run.error));
  return el("td", {}, ...bits);
}

function renderEntities(ents, stats) {
  const per = (stats && stats.entities) || {};
  fill($("entities").tBodies[0], ents.entities.map((e) => {
    const w = per[e.name] || {};
    const refused = Object.values(w.refused || {}).reduce((a, b) => a + b, 0);
    const b = e.detail_backlog || {};
    return el("tr", { "data-testid": `entity-${e.name}` },
      el("td", {}, el("b", {}, e.name), el("div", { class: "muted small" }, e.table)),
      el("td", { class: "num", "data-testid": "live-rows" }, num(e.live_rows)),
      el("td", { class: "num", "data-testid": "webhooks" }, `${num(w.received_1h)} / ${num(w.received_24h)}`),
      el("td", { class: "num", "data-testid": "refused" }, num(refused)),
      el("td", { class: "num" }, w.apply_p99_s === null || w.apply_p99_s === undefined ? "–" : `${w.apply_p99_s} s`),
      runCell(e.last_runs.full), runCell(e.last_runs.incremental), runCell(e.last_runs.stock),
      el("td", { class: "num", "data-testid": "detail-backlog" }, num(b.waiting)));
  }));
  const budget = ents.zoho_budget;
  $("zoho-calls-today").textContent = budget ? num(budget.used) : "–";
  $("zoho-budget").textContent = budget ? `of ${num(budget.budget)} (zoho.daily_budget); ${num(budget.remaining)} left` : "budget unknown (Redis)";
  $("backlog").textContent = num(ents.detail.waiting);
  $("backlog-eta").textContent = ents.detail.waiting ? `done ${ents.detail.eta || "when the budget allows"}` : "every row whole";
}

function renderStats(stats) {
  $("webhooks-1h").textContent = `${num(stats.received_1h)} / h`;
  $("webhooks-24h").textContent = `${num(stats.received_24h)} in 24 h`;
  const rows = Object.entries(stats.refused).map(([reason, n]) => el("tr", {}, el("td", {}, reason), el("td", { class: "num" }, num(n))));
  fill($("refusals").tBodies[0], rows, "refusals-empty");
}

function renderAlerts(a) {
  fill($("alerts").tBodies[0], a.alerts.map((x) => el("tr", { "data-testid": `alert-${x.id}` },
    el("td", {}, pill(x.severity)),
    el("td", {}, x.type, x.entity ? el("div", { class: "muted small" }, x.entity) : ""),
    el("td", { class: "msg" }, x.message),
    el("td", {}, when(x.last_seen_at), el("div", { class: "muted small" }, `${x.count}×`)),
    el("td", {}, x.acknowledged_at ? el("span", { class: "muted small", "data-testid": "acknowledged" }, "acknowledged")
      : el("button", { class: "quiet", "data-testid": "acknowledge", onclick: (ev) => act(ev.target,
        `/api/tds/alerts/${x.id}/acknowledge`, {}, () => `alert ${x.id} acknowledged`) }, "Acknowledge")))), "alerts-empty");
}

function renderBreakers(b) {
  fill($("breakers").tBodies[0], b.breakers.map((x) => el("tr", { "data-testid": `breaker-${x.name}` },
    el("td", {}, x.name), el("td", {}, pill(x.state), x.reason ? el("div", { class: "muted small msg" }, x.reason) : ""),
    el("td", { class: "num" }, `${num(x.failures)} / ${num(x.calls)}`), el("td", {}, when(x.opened_at || x.since)))));
}

function renderJobs(j) {
  $("leader").textContent = j.leader ? `leader: ${j.leader}` : "no leader";
  fill($("jobs").tBodies[0], j.jobs.map((x) => el("tr", { "data-testid": `job-${x.id}` },
    el("td", {}, x.id), el("td", {}, el("code", {}, x.trigger)),
    el("td", {}, x.enabled ? when(x.next_run) : "off"), el("td", {}, when(x.last_run)),
    el("td", {}, x.last_outcome ? pill(x.last_outcome) : "–", x.last_error ? el("div", { class: "muted small msg" }, x.last_error) : ""),
    el("td", {}, el("button", { class: "quiet", "data-testid": "run-now", onclick: (ev) => act(ev.target,
      `/api/tds/monitoring/scheduler/jobs/${x.id}/run`, {}, () => `${x.id} sent`) }, "Run now")))));
}

function renderDead(d) {
  $("dead-letters").textContent = num(d.total);
  $("replay-all").hidden = d.total === 0;
  fill($("dead-letter-list").tBodies[0], d.items.map((x) => el("tr", { "data-testid": `dead-letter-${x.id}` },
    el("td", { class: "num" }, x.id), el("td", {}, x.entity), el("td", {}, el("code", {}, x.zoho_id)),
    el("td", { class: "msg" }, el("b", {}, x.error_code || ""), " ", x.error_message || ""),
    el("td", { class: "num" }, num(x.attempts)), el("td", {}, when(x.last_failed_at)),
    el("td", {}, el("button", { class: "quiet", "data-testid": "replay", onclick: (ev) => act(ev.target,
      "/api/tds/dead-letter/replay", { ids: [x.id] }, (r) => `replayed ${r.replayed}`) }, "Replay")))), "dead-empty");
}

// The data checks' counts as the latest stats run found them (GET /api/tds/data-validation/<check> lists them).
function renderChecks(s) {
  const run = s.latest, checks = (run && run.data_checks) || {};
  $("data-checks-when").textContent = run && run.data_checks ? `stats run ${ago(run.finished_at)}` : "no stats run yet";
  $("data-checks").replaceChildren(...Object.entries(checks).map(([name, c]) => el("div", {
    "data-testid": `data-check-${name}`,
    title: c.error || Object.entries(c.counts).map(([entity, n]) => `${entity} ${n}`).join(", ") || "nothing found",
  }, el("span", {}, name), el("b", {}, c.error ? "failed" : num(c.total)))));
}

const SOURCES = [
  ["/api/tds/monitoring/health", renderHealth],
  ["/api/tds/alerts?status=open", renderAlerts],
  ["/api/tds/circuit-breakers", renderBreakers],
  ["/api/tds/monitoring/scheduler/jobs", renderJobs],
  ["/api/tds/dead-letter?limit=50", renderDead],
  ["/api/tds/stats?limit=1", renderChecks],
];

let busy = false;
async function refresh() {
  if (busy) return;
  busy = true;
  try {
    const [ents, stats, ...rest] = await Promise.allSettled([api("/api/tds/entities"), api("/api/tds/webhooks/stats"),
      ...SOURCES.map(([path]) => api(path))]);
    const problems = [];
    rest.forEach((r, i) => {
      if (r.status === "fulfilled") SOURCES[i][1](r.value);
      else problems.push(r.reason.message);
    });
    if (stats.status === "fulfilled") renderStats(stats.value);
    else problems.push(stats.reason.message);
    if (ents.status === "fulfilled") renderEntities(ents.value, stats.status === "fulfilled" ? stats.value : null);
    else problems.push(ents.reason.message);
    $("problem").hidden = problems.length === 0;
    $("problem").textContent = problems.join(" · ");
    $("refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.loaded = "true";
  } finally {
    busy = false;
  }
}

$("logout").addEventListener("click", async () => {
  await api("/dashboard/logout", { method: "POST" }).catch(() => {});
  window.location.assign("/dashboard");
});
$("replay-all").addEventListener("click", (ev) => act(ev.target, "/api/tds/dead-letter/replay", { all: true },
  (r) => `replayed ${r.replayed}`));
refresh();
setInterval(refresh, REFRESH_MS);
