// The filter form and the page's address: the filters and zone live in the query
// string, so a view can be bookmarked or sent to a colleague as it is.

import { FILTER_FIELDS } from "./api.js";

export function readForm(form) {
  const data = new FormData(form);
  const filters = {};
  for (const name of FILTER_FIELDS) filters[name] = String(data.get(name) ?? "").trim();
  return filters;
}

export function writeForm(form, filters) {
  for (const name of FILTER_FIELDS) {
    const input = form.elements.namedItem(name);
    if (!input) continue;
    const value = filters[name] ?? "";
    if (input.tagName === "SELECT" && value && !hasOption(input, value)) {
      input.append(new Option(value, value));
    }
    input.value = value;
  }
}

function hasOption(select, value) {
  return Array.from(select.options).some((option) => option.value === value);
}

// A named range is kept by its name, not its bounds: "Today" moves on at midnight, and a
// bookmark of it opens on the day it is opened. An address with neither a range nor
// times is today's: one old call must not squash the day into one bar, and a poll must
// not count every row the database holds.
export const RANGES = { today: "Today", "24h": "24 h", "7d": "7 d", all: "All" };
export const DEFAULT_RANGE = "today";

export function fromAddress() {
  const params = new URLSearchParams(window.location.search);
  const filters = {};
  for (const name of FILTER_FIELDS) filters[name] = params.get(name) ?? "";
  const named = params.get("range") ?? "";
  let range = "";
  if (Object.hasOwn(RANGES, named)) range = named;
  else if (!filters.from && !filters.to) range = DEFAULT_RANGE;
  if (range) Object.assign(filters, { from: "", to: "" });
  return { filters, range, tz: params.get("tz") };
}

export function toAddress(filters, range, tz) {
  const params = new URLSearchParams();
  if (range) params.append("range", range);
  for (const name of FILTER_FIELDS) if (filters[name]) params.append(name, filters[name]);
  params.append("tz", tz);
  window.history.replaceState(null, "", `${window.location.pathname}?${params}`);
}

// Wall-clock "YYYY-MM-DDTHH:MM" of an instant in `zone`: what datetime-local
// inputs hold, and what the API reads in the zone given as `tz`.
export function localInput(instant, zone) {
  const parts = new Intl.DateTimeFormat("en-CA", {
    timeZone: zone,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  }).formatToParts(instant);
  const get = (type) => parts.find((part) => part.type === type)?.value ?? "00";
  return `${get("year")}-${get("month")}-${get("day")}T${get("hour")}:${get("minute")}`;
}

const DAY = 86400000;

// The calendar day after "YYYY-MM-DD" (plain date arithmetic: no zone, no DST).
function nextDay(date) {
  const [year, month, day] = date.split("-").map(Number);
  return new Date(Date.UTC(year, month - 1, day + 1)).toISOString().slice(0, 10);
}

// {from, to} of a named range in `zone` at `now`, as the API reads them (`to` is
// exclusive). The days' ranges end at the coming midnight, so a call the PBX's clock
// puts a little ahead of this browser's is still today's.
export function rangeBounds(range, zone, now = new Date()) {
  const today = localInput(now, zone).slice(0, 10);
  const tonight = `${nextDay(today)}T00:00`;
  if (range === "today") return { from: `${today}T00:00`, to: tonight };
  if (range === "24h") return { from: localInput(new Date(now.getTime() - DAY), zone), to: "" };
  if (range === "7d") {
    const first = localInput(new Date(now.getTime() - 6 * DAY), zone).slice(0, 10);
    return { from: `${first}T00:00`, to: tonight };
  }
  return { from: "", to: "" };
}

// On a phone the form folds away behind a button, which says which range and how many
// filters apply, so a narrowed view never passes for the whole. Returns what updates it.
export function foldable(form, button) {
  const show = (open) => {
    form.classList.toggle("open", open);
    button.setAttribute("aria-expanded", String(open));
  };
  button.addEventListener("click", () => show(!form.classList.contains("open")));
  form.addEventListener("submit", () => show(false));
  return (filters, range) => {
    const active = Object.values(filters).filter((value) => String(value ?? "").trim()).length;
    const shown = range === "all" ? "" : RANGES[range];
    button.textContent = ["Filters", shown, active || ""].filter(Boolean).join(" · ");
  };
}
