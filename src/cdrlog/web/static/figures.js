// How the wallboard and the supervisor view show the floor's figures: rates as whole
// percentages, seconds as M:SS or H:MM:SS, and a rate's colour against its target.

export function clamp(value, low, high) {
  return Number.isFinite(value) ? Math.min(high, Math.max(low, value)) : low;
}

export function percent(rate) {
  return rate === null || rate === undefined ? "–" : `${Math.round(rate * 100)}%`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const whole = Math.round(seconds);
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  const rest = String(whole % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${rest}` : `${minutes}:${rest}`;
}

// good at or above the target (in %), warn within 10 points below it, bad under that.
export function level(rate, target) {
  if (rate === null || rate === undefined) return "none";
  const shown = rate * 100;
  if (shown >= target) return "good";
  return shown >= target - 10 ? "warn" : "bad";
}

// The page's own URL names the business hours as `hours` and `days` (as the CLI's
// --business-hours and --business-days); the API takes them under their full names.
export function forwardBusinessHours(pageUrl, params) {
  if (pageUrl.get("hours")) params.set("business_hours", pageUrl.get("hours"));
  if (pageUrl.get("days")) params.set("business_days", pageUrl.get("days"));
}
