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

export function fromAddress() {
  const params = new URLSearchParams(window.location.search);
  const filters = {};
  for (const name of FILTER_FIELDS) filters[name] = params.get(name) ?? "";
  return { filters, tz: params.get("tz") };
}

export function toAddress(filters, tz) {
  const params = new URLSearchParams();
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

export function rangeStart(range, zone, now = new Date()) {
  const midnight = (instant) => `${localInput(instant, zone).slice(0, 10)}T00:00`;
  if (range === "today") return midnight(now);
  if (range === "24h") return localInput(new Date(now.getTime() - DAY), zone);
  if (range === "7d") return midnight(new Date(now.getTime() - 6 * DAY));
  return "";
}

// On a phone the form folds away behind a button, which says how many filters apply so
// a narrowed view never passes for the whole. Returns what updates that count.
export function foldable(form, button) {
  const show = (open) => {
    form.classList.toggle("open", open);
    button.setAttribute("aria-expanded", String(open));
  };
  button.addEventListener("click", () => show(!form.classList.contains("open")));
  form.addEventListener("submit", () => show(false));
  return (filters) => {
    const active = Object.values(filters).filter((value) => String(value ?? "").trim()).length;
    button.textContent = active ? `Filters · ${active}` : "Filters";
  };
}
