// Alerts raised now, as the wallboard and the supervisor view show them: a banner per
// alert, saying what is wrong, by how much, where and since when. The words follow the
// rule's metric (see `cdrlog alerts add --help`).

import { el, reconcile } from "./dom.js";
import { duration, percent } from "./figures.js";

function minutes(value) {
  return value === null || value === undefined ? "–" : `${Math.round(value)} min`;
}

function over(alert) {
  return alert.window_minutes ? ` over the last ${alert.window_minutes} min` : "";
}

// [what is wrong, the figure now] of an alert.
export function alertWords(alert) {
  const { metric, threshold, value } = alert;
  switch (metric) {
    case "service_level_below":
      return [`Service level below ${percent(threshold)}`, `${percent(value)}${over(alert)}`];
    case "abandon_rate_above":
      return [`Abandon rate above ${percent(threshold)}`, `${percent(value)}${over(alert)}`];
    case "waiting_above":
      return [`More than ${threshold} calls waiting`, `${value ?? "–"} waiting now`];
    case "wait_above":
      return [`A caller waiting over ${duration(threshold)}`, `longest wait ${duration(value)}`];
    case "silent_minutes":
      return [`No events for ${minutes(threshold)}`, `silent for ${minutes(value)}: is the PBX sending?`];
    default:
      return [metric, String(value ?? "–")];
  }
}

function where(alert, showTeam) {
  const queue = alert.queue === null ? "all queues" : `queue ${alert.queue}`;
  const since = `since ${alert.raised_at.slice(11, 16)}`;
  return [showTeam ? alert.team : null, queue, since].filter(Boolean).join(" · ");
}

// Puts a banner per alert into `container` (class `prefix`-alert), hidden when none.
export function renderAlerts(container, alerts, { prefix, testId, showTeam }) {
  container.hidden = alerts.length === 0;
  reconcile(
    container,
    alerts.map((alert) => {
      const [title, figure] = alertWords(alert);
      return el(
        "div",
        {
          className: `${prefix}-alert`,
          attrs: { role: "alert", "data-testid": testId, "data-metric": alert.metric, "data-rule": alert.rule },
        },
        [
          el("strong", { className: `${prefix}-alert-title`, text: title }),
          el("span", { className: `${prefix}-alert-value`, text: figure }),
          el("span", { className: `${prefix}-alert-where`, text: where(alert, showTeam) }),
        ],
      );
    }),
  );
}
