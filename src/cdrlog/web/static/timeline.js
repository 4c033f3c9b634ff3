// A call's timeline in a side panel: the CDR's fields and the events it was built from,
// so an operator can see why a CDR looks as it does (a late hangup, a missing answer).

import { getJson } from "./api.js";
import { el } from "./dom.js";
import {
  LEGS,
  calltypeNode,
  clock,
  dispositionBadge,
  statusBadge,
  timeNode,
} from "./format.js";

function seconds(value) {
  return `${clock(value)}${value === null || value === undefined ? "" : ` (${value} s)`}`;
}

// In pairs: the panel shows two fields a line where there is room.
function fieldRows(cdr) {
  const time = (iso) => timeNode(iso, { full: true });
  return [
    ["Team", cdr.orgidentity],
    ["Session", cdr.diallogid],
    ["Type", calltypeNode(cdr.calltype)],
    ["Target", cdr.target],
    ["From", cdr.src],
    ["To", cdr.dst],
    ["Agent", cdr.agentno],
    ["Queue", cdr.agent_group],
    ["DID", cdr.did],
    ["Transferred to", cdr.transferred_to],
    ["Disposition", dispositionBadge(cdr.disposition)],
    ["Status", statusBadge(cdr.status)],
    ["Start", time(cdr.starttime)],
    ["Duration", seconds(cdr.duration)],
    ["Answer", time(cdr.answertime)],
    ["Billsec", seconds(cdr.billsec)],
    ["End", time(cdr.endtime)],
    ["Hold", seconds(cdr.hold_seconds)],
    ["Created", time(cdr.created_at)],
    ["Updated", time(cdr.updated_at)],
  ];
}

function fieldNodes(cdr) {
  return fieldRows(cdr).flatMap(([label, value]) => {
    const dd = el("dd", { attrs: { "data-field": label.toLowerCase().replaceAll(" ", "-") } });
    if (value instanceof Node) dd.append(value);
    else dd.textContent = value ?? "—";
    return [el("dt", { text: label }), dd];
  });
}

// The order cdrlog received the events in, to show which ones came late.
function arrivalRanks(events) {
  const byArrival = [...events].sort(
    (a, b) => Date.parse(a.received_at) - Date.parse(b.received_at) || a.id - b.id,
  );
  return new Map(byArrival.map((event, index) => [event.id, index + 1]));
}

function eventRow(event, index, rank) {
  const late = rank !== index + 1;
  const attrs = {
    "data-testid": "timeline-event",
    "data-event": (event.event ?? "").toLowerCase(),
    title: JSON.stringify(event.fields ?? {}, null, 1),
  };
  const cell = (column, value, className = "") =>
    el("td", { className, text: value ?? "—", attrs: { "data-col": column } });
  const row = el("tr", { attrs, className: late ? "late" : "" }, [
    el("td", { attrs: { "data-col": "event_time" } }, [timeNode(event.event_time)]),
    el("td", { attrs: { "data-col": "received_at" } }, [timeNode(event.received_at)]),
    cell("source", LEGS[(event.source ?? "").toUpperCase()] ?? event.source),
    cell("event", event.event, "event-name"),
    cell("activenum", event.activenum, "number"),
    cell("hangupcause", event.hangupcause),
    cell("arrival", late ? `#${rank} late` : `#${rank}`, "num"),
  ]);
  return row;
}

export class Timeline {
  constructor(dialog, onError) {
    this.dialog = dialog;
    this.onError = onError;
    this.cdr = null;
    this.request = null;
    const close = dialog.querySelector('[data-testid="timeline-close"]');
    close.addEventListener("click", () => this.close());
    dialog.addEventListener("click", (event) => {
      // A click on the backdrop lands on the dialog itself, outside its content.
      if (event.target === dialog) this.close();
    });
    dialog.addEventListener("close", () => {
      this.cdr = null;
    });
  }

  async open(id, tz) {
    this.request?.abort();
    this.request = new AbortController();
    try {
      const cdr = await getJson(`/api/v1/cdrs/${encodeURIComponent(id)}`,
        new URLSearchParams({ tz }), this.request.signal);
      this.render(cdr);
      if (!this.dialog.open) this.dialog.showModal();
    } catch (error) {
      if (error.name !== "AbortError") this.onError(error);
    }
  }

  // Calls still in progress keep changing: their panel follows them.
  refresh(tz) {
    if (this.dialog.open && this.cdr && this.cdr.status === "open") this.open(this.cdr.id, tz);
  }

  reopen(tz) {
    if (this.dialog.open && this.cdr) this.open(this.cdr.id, tz);
  }

  close() {
    this.request?.abort();
    if (this.dialog.open) this.dialog.close();
  }

  render(cdr) {
    this.cdr = cdr;
    const find = (id) => this.dialog.querySelector(`[data-testid="${id}"]`);
    find("timeline-title").textContent = `Call ${cdr.diallogid}`;
    find("timeline-sub").replaceChildren(
      `${cdr.orgidentity} · ${cdr.target} · CDR #${cdr.id} · `,
      dispositionBadge(cdr.disposition),
    );
    find("timeline-fields").replaceChildren(...fieldNodes(cdr));
    const events = cdr.events ?? [];
    const ranks = arrivalRanks(events);
    find("timeline-count").textContent = String(events.length);
    find("timeline-rows").replaceChildren(
      ...events.map((event, index) => eventRow(event, index, ranks.get(event.id))),
    );
  }
}
