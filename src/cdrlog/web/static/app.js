// The dashboard: filters and zone in, five API reads out, refreshed every two seconds
// while the tab is visible. Once cdrlog has tokens, it first asks for one (sign-in).

import { AgentBoard } from "./agents.js";
import {
  LIVE_FIELDS,
  cookieRefused,
  csvHref,
  filterParams,
  getJson,
  plainHttpOffLoopback,
  session,
} from "./api.js";
import { byTestId, el } from "./dom.js";
import {
  DEFAULT_RANGE,
  foldable,
  fromAddress,
  rangeBounds,
  readForm,
  toAddress,
  writeForm,
} from "./filters.js";
import { HourChart } from "./hourchart.js";
import { RolloutNotice } from "./rollout.js";
import { AgentTable, CdrTable, OpenTable, renderTotals } from "./tables.js";
import { Timeline } from "./timeline.js";
import { ZonePicker, browserZone, isZone, offsetOf } from "./zones.js";

const POLL_MS = 2000;
const PAGE = 50;
const MAX_LIMIT = 1000;
// Statistics aggregate the whole filtered set, so they are read again only when the
// latest CDRs changed, or after this long (calls closed by timeout, beyond page one).
const STATS_MAX_AGE_MS = 30000;
const OPEN_LIMIT = 200;
const ZONE_KEY = "cdrlog.tz";

const state = {
  // The form's filters; while a named range applies, their from and to are empty and
  // every request takes the range's bounds at the time it is sent.
  filters: {},
  range: DEFAULT_RANGE,
  // The range's bounds as the form shows them.
  bounds: { from: "", to: "" },
  tz: "UTC",
  generation: 0,
  controller: new AbortController(),
  timer: null,
  cdrs: [],
  cursor: null,
  total: 0,
  statsMark: null,
  statsAt: 0,
  teams: new Set(),
  agents: new Set(),
  // True while the page waits for a token: nothing is read, nothing is shown.
  locked: false,
};
const view = {};

function applied() {
  return state.range ? { ...state.filters, ...rangeBounds(state.range, state.tz) } : state.filters;
}

function params(fields, extra) {
  const query = filterParams(applied(), fields);
  for (const [name, value] of Object.entries(extra)) query.append(name, String(value));
  query.append("tz", state.tz);
  return query;
}

async function refreshCdrs(signal, generation) {
  const limit = Math.min(Math.max(PAGE, state.cdrs.length), MAX_LIMIT);
  const page = await getJson("/api/v1/cdrs", params(undefined, { limit }), signal);
  if (generation !== state.generation) return null;
  const ids = new Set(page.cdrs.map((cdr) => cdr.id));
  // Pages loaded past what one request can re-read stay as they were.
  const tail = page.next_cursor
    ? state.cdrs.slice(page.cdrs.length).filter((cdr) => !ids.has(cdr.id))
    : [];
  state.cdrs = [...page.cdrs, ...tail];
  state.cursor = tail.length ? state.cursor : page.next_cursor;
  state.total = page.total;
  renderCdrs();
  return `${page.total}|${page.cdrs.map((cdr) => `${cdr.id}@${cdr.updated_at}`).join()}`;
}

function renderCdrs() {
  const filtered = Object.values(state.filters).some(Boolean);
  view.cdrs.render(state.cdrs, filtered ? "No CDR matches these filters" : "Waiting for calls…");
  byTestId("cdr-shown").textContent = state.cdrs.length.toLocaleString("en-US");
  byTestId("cdr-total").textContent = state.total.toLocaleString("en-US");
  view.loadMore.hidden = !state.cursor;
}

async function loadMore() {
  if (!state.cursor || state.locked) return;
  const generation = state.generation;
  view.loadMore.disabled = true;
  try {
    const query = params(undefined, { limit: PAGE, cursor: state.cursor });
    const page = await getJson("/api/v1/cdrs", query, state.controller.signal);
    if (generation !== state.generation) return;
    const ids = new Set(state.cdrs.map((cdr) => cdr.id));
    state.cdrs.push(...page.cdrs.filter((cdr) => !ids.has(cdr.id)));
    state.cursor = page.next_cursor;
    renderCdrs();
  } catch (error) {
    if (error.name !== "AbortError") problem(error);
  } finally {
    view.loadMore.disabled = false;
  }
}

async function refreshOpen(signal, generation) {
  const query = params(LIVE_FIELDS, { status: "open", limit: OPEN_LIMIT });
  const page = await getJson("/api/v1/cdrs", query, signal);
  if (generation !== state.generation) return;
  view.open.render(page.cdrs);
  byTestId("open-count").textContent = page.total.toLocaleString("en-US");
  view.kpis.querySelector('[data-kpi="open"]').textContent = page.total.toLocaleString("en-US");
}

// Agents' states are about now, like calls in progress: only the team filter applies.
async function refreshPresence(signal, generation) {
  const agents = await view.presence.load(params(["team"], {}), signal);
  if (generation === state.generation) view.presence.render(agents);
}

async function refreshStats(signal, generation) {
  const [hours, agents] = await Promise.all([
    getJson("/api/v1/stats", params(undefined, { group_by: "hour" }), signal),
    getJson("/api/v1/stats", params(undefined, { group_by: "agent" }), signal),
  ]);
  if (generation !== state.generation) return;
  view.chart.render(hours.rows, state.tz, !state.filters.to);
  view.agents.render(agents.rows);
  renderTotals(view.kpis, hours.rows);
  remember(agents.rows);
}

// Teams and agents seen so far become suggestions in the filter form.
function remember(rows) {
  const grow = (set, values, listId) => {
    const before = set.size;
    for (const value of values) if (value) set.add(value);
    if (set.size === before) return;
    const options = [...set].sort().map((value) => el("option", { attrs: { value } }));
    document.getElementById(listId).replaceChildren(...options);
  };
  grow(state.teams, rows.map((row) => row.team), "teams");
  grow(state.agents, rows.map((row) => row.group), "agents");
}

async function poll() {
  clearTimeout(state.timer);
  if (state.locked) return;
  if (document.hidden) {
    setLive("paused", "Paused while hidden");
    return;
  }
  const { generation } = state;
  const { signal } = state.controller;
  showRange();
  try {
    const [mark] = await Promise.all([
      refreshCdrs(signal, generation),
      refreshOpen(signal, generation),
      refreshPresence(signal, generation),
      view.rollout.refresh(state.tz, signal),
    ]);
    const stale = Date.now() - state.statsAt > STATS_MAX_AGE_MS;
    if (generation === state.generation && (mark !== state.statsMark || stale)) {
      await refreshStats(signal, generation);
      state.statsMark = mark;
      state.statsAt = Date.now();
    }
    if (generation === state.generation) succeeded();
  } catch (error) {
    if (error.name === "AbortError") return;
    if (generation === state.generation) failed(error);
  }
  if (generation !== state.generation) return;
  view.timeline.refresh(state.tz);
  clearTimeout(state.timer);
  state.timer = setTimeout(poll, POLL_MS);
}

function succeeded() {
  const now = new Intl.DateTimeFormat("en-GB", {
    timeZone: state.tz, hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  }).format(new Date());
  setLive("live", "Live", `updated ${now}`);
  view.banner.hidden = true;
}

function failed(error) {
  if (error.status === 401) {
    askForToken("The token is no longer accepted (revoked, or the session ended).");
    return;
  }
  setLive("error", "Not updating");
  showError(`${error.message}. Retrying every ${POLL_MS / 1000} s.`);
}

function setLive(status, text, updated = "") {
  view.live.dataset.state = status;
  byTestId("live-text").textContent = text;
  byTestId("last-updated").textContent = updated;
}

function showError(message) {
  view.banner.textContent = message;
  view.banner.hidden = false;
}

function problem(error) {
  if (error.status === 401) failed(error);
  else showError(error.message);
}

// --- signing in: a read token sees its team, an admin token every team ---------------

function stop() {
  state.generation += 1;
  state.controller.abort();
  state.controller = new AbortController();
  clearTimeout(state.timer);
}

// What was shown belonged to the previous token: none of it may stay on screen.
function forget() {
  state.cdrs = [];
  state.cursor = null;
  state.total = 0;
  state.statsMark = null;
  state.statsAt = 0;
  state.teams.clear();
  state.agents.clear();
  for (const id of ["teams", "agents"]) document.getElementById(id).replaceChildren();
  view.timeline.close();
  view.cdrs.reset();
  renderCdrs();
  view.open.render([]);
  byTestId("open-count").textContent = "0";
  view.kpis.querySelector('[data-kpi="open"]').textContent = "–";
  view.agents.render([]);
  view.presence.render([]);
  view.chart.render([], state.tz, false);
  renderTotals(view.kpis, []);
  view.banner.hidden = true;
  view.rollout.reset();
}

function showAccount(current) {
  view.account.hidden = !current.signed_in;
  const who = current.scope === "admin" ? "all teams" : current.team;
  byTestId("account-who").textContent = current.signed_in ? `${who} · ${current.scope}` : "";
  view.account.title = current.signed_in ? `Signed in with a ${current.scope} token` : "";
}

function askForToken(message = "") {
  stop();
  state.locked = true;
  forget();
  showAccount({ signed_in: false });
  setLive("locked", "Sign-in needed");
  view.signinError.textContent = message;
  view.signinError.hidden = !message;
  if (!view.signin.open) view.signin.showModal();
  view.signinToken.focus();
}

async function submitToken(event) {
  event.preventDefault();
  const token = view.signinToken.value.trim();
  if (!token) return;
  view.signinSubmit.disabled = true;
  try {
    await session.signIn(token);
    // A cookie the browser refused would bring this panel straight back: say why instead.
    const current = await session.read();
    if (!current.signed_in) throw new Error(cookieRefused());
    view.signinToken.value = "";
    view.signin.close();
    state.locked = false;
    showAccount(current);
    restart();
  } catch (error) {
    view.signinError.textContent = error.message;
    view.signinError.hidden = false;
  } finally {
    view.signinSubmit.disabled = false;
  }
}

async function signOut() {
  stop();
  try {
    await session.signOut();
    askForToken();
  } catch (error) {
    askForToken(`Signing out failed: ${error.message}`);
  }
}

function wireSignIn() {
  byTestId("signin-insecure").hidden = !plainHttpOffLoopback();
  view.signin = byTestId("signin-panel");
  view.signinToken = byTestId("signin-token");
  view.signinSubmit = byTestId("signin-submit");
  view.signinError = byTestId("signin-error");
  view.account = byTestId("account");
  document.getElementById("signin-form").addEventListener("submit", submitToken);
  // Escape must not dismiss the panel: behind it there is nothing to see without a token.
  view.signin.addEventListener("cancel", (event) => event.preventDefault());
  byTestId("sign-out").addEventListener("click", signOut);
}

// On load: ask for a token when one is needed and this browser has none, else read.
async function begin() {
  try {
    const current = await session.read();
    showAccount(current);
    if (current.required && !current.signed_in) {
      askForToken();
      return;
    }
  } catch {
    // Unknown: read anyway; a 401 then asks for a token, anything else shows as usual.
  }
  restart();
}

function restart() {
  state.generation += 1;
  state.controller.abort();
  state.controller = new AbortController();
  state.cdrs = [];
  state.cursor = null;
  state.statsMark = null;
  view.cdrs.reset();
  view.filterCount(state.filters, state.range);
  byTestId("chart-note").textContent = `hours in ${state.tz} (UTC${offsetOf(state.tz)})`;
  toAddress(state.filters, state.range, state.tz);
  poll();
}

// The form and the CSV link show the bounds a named range has now (they move on with
// the clock); the range's button shows it is the one applied.
function showRange() {
  const shown = applied();
  state.bounds = { from: shown.from, to: shown.to };
  view.csv.href = csvHref(shown, state.tz);
  for (const name of ["from", "to"]) {
    const input = view.form.elements.namedItem(name);
    if (input !== document.activeElement && input.value !== shown[name]) input.value = shown[name];
  }
  for (const button of view.form.querySelectorAll("[data-range]")) {
    button.setAttribute("aria-pressed", String(button.dataset.range === state.range));
  }
}

function apply(filters, range) {
  // No bounds at all is the whole journal, by its name: an empty address means today.
  const named = range || (filters.from || filters.to ? "" : "all");
  const kept = named ? { ...filters, from: "", to: "" } : filters;
  const same = JSON.stringify(kept) === JSON.stringify(state.filters) && named === state.range;
  if (same) return;
  state.filters = kept;
  state.range = named;
  writeForm(view.form, kept);
  restart();
}

// The form as filters and a range: times that still show the named range's bounds keep
// the range; times typed in make it a range of the reader's own.
function fromForm() {
  const filters = readForm(view.form);
  const { bounds } = state;
  const kept = state.range && filters.from === bounds.from && filters.to === bounds.to;
  return kept ? [filters, state.range] : [filters, ""];
}

function changeZone(zone) {
  state.tz = zone;
  try {
    localStorage.setItem(ZONE_KEY, zone);
  } catch {
    // Storage may be disabled; the zone still holds for this page.
  }
  restart();
  view.timeline.reopen(zone);
}

function wireForm() {
  view.form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (view.form.reportValidity()) apply(...fromForm());
  });
  view.form.addEventListener("change", (event) => {
    if (event.target.matches("select, input[type=datetime-local]") && view.form.checkValidity()) {
      apply(...fromForm());
    }
  });
  document.getElementById("filter-reset").addEventListener("click", () => {
    view.form.reset();
    apply(readForm(view.form), DEFAULT_RANGE);
  });
  for (const button of view.form.querySelectorAll("[data-range]")) {
    button.addEventListener("click", () => apply(readForm(view.form), button.dataset.range));
  }
}

function pickAgent(agent, team) {
  apply({ ...state.filters, agent, team: team ?? "" }, state.range);
}

function startingZone(fromUrl) {
  if (fromUrl && isZone(fromUrl)) return fromUrl;
  try {
    const saved = localStorage.getItem(ZONE_KEY);
    if (saved && isZone(saved)) return saved;
  } catch {
    // Storage may be disabled: fall back to the browser's zone.
  }
  return browserZone();
}

function start() {
  view.form = document.getElementById("filters");
  view.filterCount = foldable(view.form, byTestId("filters-toggle"));
  view.banner = byTestId("error-banner");
  view.rollout = new RolloutNotice(byTestId("rollout-notice"));
  view.live = byTestId("live-status");
  view.kpis = byTestId("kpis");
  view.csv = byTestId("csv-link");
  view.loadMore = document.getElementById("load-more");
  view.chart = new HourChart(document.getElementById("hour-chart"));
  view.timeline = new Timeline(byTestId("timeline"), problem);
  const open = (id) => view.timeline.open(id, state.tz);
  view.cdrs = new CdrTable(byTestId("cdr-rows"), open);
  view.open = new OpenTable(byTestId("open-rows"), open);
  view.agents = new AgentTable(byTestId("agent-rows"), pickAgent);
  view.presence = new AgentBoard(byTestId("agent-panel"), pickAgent);
  view.zones = new ZonePicker(byTestId("tz-select"), byTestId("tz-custom"), changeZone);
  const address = fromAddress();
  state.tz = startingZone(address.tz);
  state.filters = address.filters;
  state.range = address.range;
  view.zones.set(state.tz);
  writeForm(view.form, state.filters);
  wireForm();
  view.loadMore.addEventListener("click", loadMore);
  document.addEventListener("visibilitychange", poll);
  setInterval(() => [view.open, view.presence].forEach((ticking) => ticking.tick()), 1000);
  wireSignIn();
  begin();
}

start();
