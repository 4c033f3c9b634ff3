// The read API, as the dashboard calls it. Every request carries the same filter
// parameters, in the same order, as the CSV link: what is downloaded is what is shown.
// Once cdrlog has tokens, the browser's session cookie (HTTP-only, so never seen here)
// authenticates every read; sign-in and sign-out go through `session`.

export const FILTER_FIELDS = [
  "from",
  "to",
  "team",
  "agent",
  "number",
  "disposition",
  "calltype",
  "status",
  "min_billsec",
];

// "Calls in progress" is about now: time, outcome and billsec filters cannot apply to it.
export const LIVE_FIELDS = ["team", "agent", "number", "calltype"];

export function filterParams(filters, fields = FILTER_FIELDS) {
  const params = new URLSearchParams();
  for (const name of fields) {
    const value = String(filters[name] ?? "").trim();
    if (value) params.append(name, value);
  }
  return params;
}

export function csvHref(filters, tz) {
  const params = new URLSearchParams({ format: "csv" });
  for (const [name, value] of filterParams(filters)) params.append(name, value);
  params.append("tz", tz);
  return `/api/v1/cdrs?${params}`;
}

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

export async function getJson(path, params, signal) {
  const url = params ? `${path}?${params}` : path;
  let response;
  try {
    response = await fetch(url, { headers: { Accept: "application/json" }, signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError("The server cannot be reached", 0);
  }
  if (!response.ok) throw new ApiError(await problem(response), response.status);
  return response.json();
}

async function problem(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    return `HTTP ${response.status}`;
  }
  const detail = body?.detail ?? body?.error ?? body;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((item) => `${(item.loc ?? []).slice(-1)[0]}: ${item.msg}`).join("; ");
  }
  if (detail && typeof detail === "object") {
    return Object.entries(detail).map(([name, text]) => `${name}: ${text}`).join("; ");
  }
  return `HTTP ${response.status}`;
}

// The session cookie is HTTP-only; its readable companion holds the value that
// state-changing requests echo in X-CSRF-Token (a cross-site page cannot read it).
const CSRF_COOKIE = "cdrlog_csrf";

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...value] = part.trim().split("=");
    if (key === name) return decodeURIComponent(value.join("="));
  }
  return "";
}

async function send(method, path, body) {
  const headers = { Accept: "application/json" };
  const csrf = cookie(CSRF_COOKIE);
  if (csrf) headers["X-CSRF-Token"] = csrf;
  const options = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, options);
  } catch {
    throw new ApiError("The server cannot be reached", 0);
  }
  if (!response.ok) throw new ApiError(await problem(response), response.status);
  return response.json();
}

// {required, signed_in, scope, team}: whether a token is needed, and whose this is.
export const session = {
  read: () => getJson("/api/v1/session"),
  signIn: (token) => send("POST", "/api/v1/session", { token }),
  signOut: () => send("DELETE", "/api/v1/session"),
};

// Why a sign-in the server accepted left no session: a browser that blocks cookies, or,
// on an http page, a cookie marked Secure because a proxy told cdrlog the page is https
// (X-Forwarded-Proto), which an http page is never given back.
export function cookieRefused() {
  const refused = "Your browser did not keep the sign-in cookie";
  if (window.location.protocol === "https:") {
    return `${refused}: allow cookies for this site, then sign in again.`;
  }
  return (
    `${refused}: it blocks cookies for this site, or a proxy tells cdrlog this page is ` +
    "on https while it is on http. Allow cookies, or open the page over https."
  );
}

// Browsers treat loopback as secure; anywhere else, plain http shows the token to the
// network. Sign-in still works there (a LAN without TLS is a choice), with a warning.
export function plainHttpOffLoopback() {
  const { protocol, hostname } = window.location;
  const loopback =
    hostname === "localhost" ||
    hostname.endsWith(".localhost") ||
    hostname === "[::1]" ||
    /^127\.\d+\.\d+\.\d+$/.test(hostname);
  return protocol === "http:" && !loopback;
}
