// The time-zone selector: the browser's zone, UTC, common IANA zones, or any other
// IANA name typed in. The server checks the name again (`tz=`) and says if it is unknown.

import { el } from "./dom.js";

const COMMON = [
  "America/Los_Angeles",
  "America/Denver",
  "America/Chicago",
  "America/New_York",
  "America/Sao_Paulo",
  "Europe/London",
  "Europe/Paris",
  "Europe/Berlin",
  "Europe/Istanbul",
  "Europe/Moscow",
  "Africa/Johannesburg",
  "Asia/Dubai",
  "Asia/Kolkata",
  "Asia/Jakarta",
  "Asia/Singapore",
  "Asia/Shanghai",
  "Asia/Hong_Kong",
  "Asia/Tokyo",
  "Australia/Sydney",
  "Pacific/Auckland",
];
const OTHER = "__other__";

export function browserZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

export function isZone(name) {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

// "+05:30" for Asia/Kolkata now: the label users compare with the times shown.
export function offsetOf(zone, at = new Date()) {
  const parts = new Intl.DateTimeFormat("en-US", { timeZone: zone, timeZoneName: "longOffset" })
    .formatToParts(at);
  const name = parts.find((part) => part.type === "timeZoneName")?.value ?? "GMT";
  return name === "GMT" ? "+00:00" : name.replace("GMT", "");
}

function option(value, label) {
  return el("option", { text: label, attrs: { value } });
}

export class ZonePicker {
  constructor(select, custom, onChange) {
    this.select = select;
    this.custom = custom;
    this.onChange = onChange;
    this.zone = browserZone();
    select.addEventListener("change", () => this.picked());
    custom.addEventListener("keydown", (event) => {
      if (event.key === "Enter") this.typed();
    });
    custom.addEventListener("change", () => this.typed());
  }

  fill() {
    const own = browserZone();
    const options = [option(own, `Browser · ${own} (UTC${offsetOf(own)})`)];
    if (own !== "UTC") options.push(option("UTC", "UTC (+00:00)"));
    for (const zone of COMMON.filter((name) => name !== own)) {
      options.push(option(zone, `${zone.replace(/_/g, " ")} (UTC${offsetOf(zone)})`));
    }
    if (!COMMON.includes(this.zone) && ![own, "UTC"].includes(this.zone)) {
      options.push(option(this.zone, `${this.zone} (UTC${offsetOf(this.zone)})`));
    }
    options.push(option(OTHER, "Other…"));
    this.select.replaceChildren(...options);
    this.select.value = this.zone;
  }

  set(zone) {
    this.zone = isZone(zone) ? zone : browserZone();
    this.fill();
  }

  picked() {
    if (this.select.value === OTHER) {
      this.custom.hidden = false;
      this.custom.value = "";
      this.custom.focus();
      return;
    }
    this.custom.hidden = true;
    this.choose(this.select.value);
  }

  typed() {
    const name = this.custom.value.trim();
    if (!name) return;
    if (!isZone(name)) {
      this.custom.setCustomValidity(`${name} is not an IANA time zone`);
      this.custom.reportValidity();
      return;
    }
    this.custom.setCustomValidity("");
    this.custom.hidden = true;
    this.choose(name);
  }

  choose(zone) {
    this.zone = zone;
    this.fill();
    this.onChange(zone);
  }
}
