// The wallboard: a full-screen page for a TV on the wall. It reads `/api/v1/now` every
// few seconds and shows the floor in figures large enough to read across a room.
//
// Everything is chosen by the URL, so a screen is set up once and left alone:
//   /wallboard?team=T&queue=100&queue=200&tz=Area/City&sl=20&target=80&refresh=5
// `sl` is the service-level threshold in seconds, `target` the share (in %) that colours
// the service level green at or above it, amber within 10 points below, red under that;
// `hours=08:00-20:00&days=mon-fri` count only calls that started in business hours.

import { renderAlerts } from "./alerts.js";
import { byTestId, el, reconcile } from "./dom.js";
import { clamp, duration, forwardBusinessHours, level as levelFor, percent } from "./figures.js";

const url = new URLSearchParams(window.location.search);
const target = clamp(Number(url.get("target") ?? 80), 1, 100);
const refresh = clamp(Number(url.get("refresh") ?? 5), 2, 300) * 1000;
const STATES = [
  ["available", "Available"],
  ["on_call", "On call"],
  ["after_call_work", "Wrap-up"],
  ["paused", "Paused"],
];

function level(rate) {
  return levelFor(rate, target);
}

const byId = byTestId;

function query() {
  const params = new URLSearchParams();
  for (const name of ["team", "tz"]) if (url.get(name)) params.set(name, url.get(name));
  for (const queue of url.getAll("queue")) params.append("queue", queue);
  if (url.get("sl")) params.set("service_level_seconds", url.get("sl"));
  if (url.get("short")) params.set("short_abandon_seconds", url.get("short"));
  forwardBusinessHours(url, params);
  return params;
}

function queueName(queue) {
  const name = queue.queue === null ? "No queue" : `Queue ${queue.queue}`;
  return url.get("team") ? name : `${queue.orgidentity} · ${name}`;
}

function render(now) {
  const today = now.today;
  byId("service-level").textContent = percent(today.service_level);
  byId("tile-service-level").dataset.level = level(today.service_level);
  byId("service-level-target").textContent =
    `answered within ${now.service_level_seconds} s · target ${target}%`;
  byId("waiting").textContent = String(now.waiting);
  byId("tile-waiting").dataset.level = now.waiting > 0 ? "warn" : "good";
  byId("longest-wait").textContent =
    now.longest_wait === null ? "nobody waiting" : `longest ${duration(now.longest_wait)}`;
  byId("abandon-rate").textContent = percent(today.abandon_rate);
  byId("abandoned").textContent = `${today.abandoned} ${today.abandoned === 1 ? "call" : "calls"}`;
  byId("offered").textContent = String(today.offered);
  byId("answered-within").textContent = `${today.answered_within} answered in time`;
  reconcile(
    byId("agents"),
    STATES.map(([state, label]) =>
      el("div", { className: "wb-agent", attrs: { "data-state": state, "data-testid": `agents-${state}` } }, [
        el("span", { className: "wb-agent-count", text: now.agents[state] ?? 0 }),
        el("span", { className: "wb-agent-label", text: label }),
      ]),
    ),
  );
  reconcile(
    byId("queues").tBodies[0],
    now.queues.map((queue) =>
      el("tr", { attrs: { "data-testid": "queue-row" } }, [
        el("th", { text: queueName(queue), attrs: { scope: "row" } }),
        el("td", { text: queue.waiting, attrs: { "data-level": queue.waiting > 0 ? "warn" : "" } }),
        el("td", { text: duration(queue.longest_wait) }),
        el("td", {
          text: percent(queue.today?.service_level),
          attrs: { "data-level": level(queue.today?.service_level) },
        }),
        el("td", { text: queue.today ? queue.today.abandoned : 0 }),
        el("td", { text: queue.agents.available }),
        el("td", { text: queue.agents.on_call }),
      ]),
    ),
  );
  byId("wb-clock").textContent = now.at.slice(11, 16);
  const queues = url.getAll("queue");
  const scope = [url.get("team"), queues.length ? `queues ${queues.join(", ")}` : null];
  byId("wb-title").textContent = ["Wallboard", ...scope.filter(Boolean)].join(" · ");
}

function status(state, text) {
  byId("wb-status").dataset.state = state;
  byId("wb-status-text").textContent = text;
}

// The alerts raised for the team (or every team) shown, of the queues shown: a rule of
// all the team's queues concerns any of them.
async function pollAlerts() {
  const params = new URLSearchParams();
  for (const name of ["team", "tz"]) if (url.get(name)) params.set(name, url.get(name));
  const response = await fetch(`/api/v1/alerts?${params}`, { headers: { Accept: "application/json" } });
  if (!response.ok) return;
  const queues = url.getAll("queue");
  const shown = (await response.json()).active.filter(
    (alert) => !queues.length || alert.queue === null || queues.includes(alert.queue),
  );
  renderAlerts(byId("wb-alerts"), shown, { prefix: "wb", testId: "wb-alert", showTeam: !url.get("team") });
}

async function poll() {
  try {
    const [response] = await Promise.all([
      fetch(`/api/v1/now?${query()}`, { headers: { Accept: "application/json" } }),
      pollAlerts().catch(() => undefined),
    ]);
    if (response.status === 401) {
      status("error", "Sign in on the dashboard (/) on this screen first");
    } else if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      status("error", body.detail ? JSON.stringify(body.detail) : `Error ${response.status}`);
    } else {
      render(await response.json());
      status("live", `Live · every ${refresh / 1000} s`);
    }
  } catch {
    status("error", "The server cannot be reached; trying again");
  }
  window.setTimeout(poll, refresh);
}

poll();
