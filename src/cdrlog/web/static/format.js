// How values are shown. Times come from the API already in the chosen zone (`tz=`),
// so they are displayed as written, never re-converted by the browser's own zone.

import { el } from "./dom.js";

const ISO = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}:\d{2})(:\d{2})?(?:\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

export const DISPOSITIONS = {
  ANSWER: "Answered",
  NOANSWER: "No answer",
  BUSY: "Busy",
  FAILED: "Failed",
  CONGESTION: "Congestion",
};

export const STATUSES = { open: "In progress", closed: "Closed", timeout: "Timed out" };
export const CALLTYPES = { dialout: "Out", dialin: "In" };
export const LEGS = {
  AGENT: "Agent",
  CALLER: "A · caller",
  CALLEE: "B · callee",
  CONSULT: "Consulted party",
  CONVERSATION: "Whole call",
};
export const AGENT_STATES = {
  available: "Available",
  on_call: "On call",
  paused: "Paused",
  after_call_work: "Wrap-up",
  logged_out: "Logged out",
};

export function timeParts(iso) {
  const match = ISO.exec(iso ?? "");
  if (!match) return null;
  const [, year, month, day, minutes, seconds, offset] = match;
  return {
    date: `${year}-${month}-${day}`,
    shortDate: `${month}-${day}`,
    time: minutes + (seconds ?? ":00"),
    offset: offset === "Z" ? "+00:00" : offset,
  };
}

// A <time> whose `datetime` keeps the exact instant and offset the API gave.
export function timeNode(iso, { full = false, date = true } = {}) {
  if (!iso) return el("span", { className: "muted", text: "—" });
  const parts = timeParts(iso);
  if (!parts) return el("span", { text: iso });
  const title = `${parts.date} ${parts.time} UTC${parts.offset}`;
  const node = el("time", { attrs: { datetime: iso, title } });
  if (date) {
    node.append(el("span", { className: "date", text: full ? parts.date : parts.shortDate }), " ");
  }
  node.append(parts.time);
  return node;
}

export function clock(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const whole = Math.max(0, Math.round(seconds));
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  const secs = String(whole % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${secs}` : `${minutes}:${secs}`;
}

export function hms(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const whole = Math.max(0, Math.round(seconds));
  const minutes = String(Math.floor((whole % 3600) / 60)).padStart(2, "0");
  const secs = String(whole % 60).padStart(2, "0");
  return `${Math.floor(whole / 3600)}:${minutes}:${secs}`;
}

// How long a state has lasted, as people say it: 45s, 4m 12s, 2h 05m, 3d 4h.
export function lasting(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
  const whole = Math.max(0, Math.floor(seconds));
  const [days, hours] = [Math.floor(whole / 86400), Math.floor((whole % 86400) / 3600)];
  const [minutes, secs] = [Math.floor((whole % 3600) / 60), whole % 60];
  const two = (value) => String(value).padStart(2, "0");
  if (days) return `${days}d ${hours}h`;
  if (hours) return `${hours}h ${two(minutes)}m`;
  if (minutes) return `${minutes}m ${two(secs)}s`;
  return `${secs}s`;
}

export function percent(ratio) {
  return ratio === null || ratio === undefined ? "—" : `${(ratio * 100).toFixed(1)}%`;
}

export function count(value) {
  return new Intl.NumberFormat("en-US").format(value ?? 0);
}

export function dispositionBadge(value) {
  const known = Object.hasOwn(DISPOSITIONS, value);
  return el("span", {
    className: `badge disp-${known ? value.toLowerCase() : "other"}`,
    text: known ? DISPOSITIONS[value] : value,
    attrs: { title: value, "data-value": value },
  });
}

export function statusBadge(value) {
  const known = Object.hasOwn(STATUSES, value);
  return el("span", {
    className: `status status-${known ? value : "other"}`,
    text: known ? STATUSES[value] : value,
    attrs: { "data-value": value },
  });
}

export function agentStateChip(value) {
  const known = Object.hasOwn(AGENT_STATES, value);
  return el("span", {
    className: `chip state-${known ? value.replaceAll("_", "-") : "other"}`,
    text: known ? AGENT_STATES[value] : value,
    attrs: { "data-value": value },
  });
}

export function calltypeNode(value) {
  const known = Object.hasOwn(CALLTYPES, value);
  return el("span", {
    className: `calltype calltype-${known ? value : "other"}`,
    text: known ? CALLTYPES[value] : value,
    attrs: { title: value },
  });
}
