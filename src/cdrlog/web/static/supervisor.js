// The supervisor view: today's service level and abandons against their target, the
// queues, the week by hour, each agent's time and the missed calls nobody has dealt
// with yet. Every figure comes from the public API (`/now`, `/stats`, `/agents/report`,
// `/missed`, `/alerts`), so it reads exactly what a script would. The URL chooses, as on the
// wallboard: ?team=T&tz=Area/City&sl=20&target=80.

import { renderAlerts } from "./alerts.js";
import { byTestId, el, reconcile } from "./dom.js";
import {
  clamp,
  forwardBusinessHours,
  duration as seconds,
  level as levelFor,
  percent,
} from "./figures.js";

const url = new URLSearchParams(window.location.search);
const zone = url.get("tz") || Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
const target = clamp(Number(url.get("target") ?? 80), 1, 100);
const REFRESH_MS = 10_000;
const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

function level(rate) {
  return levelFor(rate, target);
}

const byId = byTestId;

// Today's date (YYYY-MM-DD) in the chosen zone, and a date `days` after one.
function today() {
  return new Intl.DateTimeFormat("en-CA", { timeZone: zone }).format(new Date());
}

function plusDays(date, days) {
  const moment = new Date(`${date}T00:00:00Z`);
  moment.setUTCDate(moment.getUTCDate() + days);
  return moment.toISOString().slice(0, 10);
}

function params(extra = {}) {
  const found = new URLSearchParams({ tz: zone });
  if (url.get("team")) found.set("team", url.get("team"));
  if (url.get("sl")) found.set("service_level_seconds", url.get("sl"));
  forwardBusinessHours(url, found);
  for (const [name, value] of Object.entries(extra)) found.set(name, value);
  return found;
}

async function read(path, extra) {
  const response = await fetch(`${path}?${params(extra)}`, { headers: { Accept: "application/json" } });
  if (response.status === 401) throw new Error("Sign in on the dashboard first");
  if (!response.ok) throw new Error(`${path}: error ${response.status}`);
  return response.json();
}

function cells(values) {
  return values.map(([text, attrs]) => el("td", { text, attrs }));
}

function queueName(team, queue) {
  const name = queue ? queue : "No queue";
  return url.get("team") ? name : `${team} · ${name}`;
}

function busy(queue) {
  const agents = Object.values(queue.agents).reduce((sum, count) => sum + count, 0);
  return queue.waiting > 0 || (queue.today?.offered ?? 0) > 0 || agents > 0;
}

function renderNow(now) {
  const day = now.today;
  byId("sv-service-level").textContent = percent(day.service_level);
  byId("sv-tile-service-level").dataset.level = level(day.service_level);
  byId("sv-target").textContent = `within ${now.service_level_seconds} s · target ${target}%`;
  byId("sv-abandon-rate").textContent = percent(day.abandon_rate);
  byId("sv-abandoned").textContent = `${day.abandoned} abandoned, ${day.short_abandoned} short`;
  byId("sv-waiting").textContent = String(now.waiting);
  byId("sv-tile-waiting").dataset.level = now.waiting ? "warn" : "good";
  byId("sv-longest").textContent = now.longest_wait === null ? "nobody waiting" : `longest ${seconds(now.longest_wait)}`;
  byId("sv-offered").textContent = String(day.offered);
  const agents = now.agents;
  byId("sv-agents").textContent = `${agents.available} available · ${agents.on_call} on call · ${agents.paused} paused`;
  reconcile(
    byId("sv-queues").tBodies[0],
    // A queue with nobody waiting, no inbound call today and no agent (the group of
    // outbound calls, say) has nothing to supervise.
    now.queues.filter(busy).map((queue) => {
      const figures = queue.today;
      return el("tr", { attrs: { "data-testid": "sv-queue-row" } }, [
        el("th", { text: queueName(queue.orgidentity, queue.queue), attrs: { scope: "row" } }),
        ...cells([
          [queue.waiting, { "data-level": queue.waiting ? "warn" : "" }],
          [seconds(queue.longest_wait)],
          [figures ? figures.offered : 0],
          [percent(figures?.service_level), { "data-level": level(figures?.service_level) }],
          [figures ? figures.abandoned : 0],
          [seconds(figures?.asa)],
          [seconds(figures?.max_wait)],
          [queue.agents.available],
          [queue.agents.on_call],
          [queue.agents.paused],
        ]),
      ]);
    }),
  );
}

function renderHeat(stats) {
  const offered = new Map(stats.rows.map((row) => [row.group, row]));
  const most = Math.max(1, ...stats.rows.map((row) => row.offered));
  const table = byId("sv-heatmap");
  const hours = [...Array(24).keys()];
  reconcile(table.tHead, [
    el("tr", {}, [el("th", { text: "" }), ...hours.map((hour) => el("th", { text: String(hour).padStart(2, "0"), attrs: { scope: "col" } }))]),
  ]);
  reconcile(
    table.tBodies[0],
    WEEKDAYS.map((day) =>
      el("tr", {}, [
        el("th", { text: day, attrs: { scope: "row" } }),
        ...hours.map((hour) => {
          const row = offered.get(`${day} ${String(hour).padStart(2, "0")}`);
          const count = row ? row.offered : 0;
          const title = row
            ? `${day} ${hour}:00 · ${count} offered · service level ${percent(row.service_level)}`
            : `${day} ${hour}:00 · no inbound call`;
          return el("td", {
            text: count || "",
            attrs: { "data-heat": String(Math.ceil((count / most) * 4)), title, "data-testid": "sv-heat-cell" },
          });
        }),
      ]),
    ),
  );
}

function renderAgents(report) {
  reconcile(
    byId("sv-agent-time").tBodies[0],
    report.agents.map((agent) =>
      el("tr", { attrs: { "data-testid": "sv-agent-row" } }, [
        el("th", { text: agent.agentno, attrs: { scope: "row" } }),
        ...cells([
          [agent.agent_group ?? ""],
          [seconds(agent.logged_in_seconds)],
          [seconds(agent.paused_seconds)],
          [seconds(agent.after_call_work_seconds)],
          [seconds(agent.talk_seconds)],
          [agent.answered_calls],
          [percent(agent.occupancy)],
          [seconds(agent.aht)],
        ]),
      ]),
    ),
  );
}

function renderMissed(page) {
  reconcile(
    byId("sv-missed").tBodies[0],
    page.missed.map((call) =>
      el("tr", { attrs: { "data-testid": "sv-missed-row" } }, [
        ...cells([
          [call.starttime.slice(11, 16)],
          [call.src ?? "withheld"],
          [call.agent_group ?? ""],
          [seconds(call.wait_seconds)],
          [call.called_back_at ? `${call.called_back_at.slice(11, 16)}, no answer` : "not yet"],
        ]),
      ]),
    ),
  );
}

function status(state, text) {
  byId("sv-status").dataset.state = state;
  byId("sv-status").textContent = text;
}

async function poll() {
  const day = today();
  const tomorrow = plusDays(day, 1);
  try {
    const [now, heat, agents, missed, alerts] = await Promise.all([
      read("/api/v1/now"),
      read("/api/v1/stats", { group_by: "weekday_hour", calltype: "dialin", from: plusDays(day, -6), to: tomorrow }),
      read("/api/v1/agents/report", { from: day, to: tomorrow }),
      read("/api/v1/missed", { from: day, to: tomorrow, unresolved: "true", limit: "50" }),
      read("/api/v1/alerts"),
    ]);
    renderAlerts(byId("sv-alerts"), alerts.active, { prefix: "sv", testId: "sv-alert", showTeam: !team });
    renderNow(now);
    renderHeat(heat);
    renderAgents(agents);
    renderMissed(missed);
    status("live", `Live · ${zone}`);
  } catch (error) {
    status("error", error.message);
  }
  window.setTimeout(poll, REFRESH_MS);
}

const team = url.get("team");
byId("sv-title").textContent = team ? `Supervisor · ${team}` : "Supervisor";
byId("sv-wallboard").href = `/wallboard?${params()}`;
poll();
