// The dashboard's tables: latest CDRs, calls in progress, agents, and the totals strip.

import { el, reconcile } from "./dom.js";
import {
  calltypeNode,
  clock,
  count,
  dispositionBadge,
  hms,
  percent,
  statusBadge,
  timeNode,
} from "./format.js";

const CDR_COLUMNS = 12;

function cell(column, content, className = "") {
  const td = el("td", { className, attrs: { "data-col": column } });
  if (content instanceof Node) td.append(content);
  else td.textContent = content ?? "—";
  if (content === null || content === undefined || content === "") td.classList.add("muted");
  return td;
}

function emptyRow(columns, text) {
  const td = el("td", { className: "empty", text, attrs: { colspan: columns } });
  return el("tr", { attrs: { "data-testid": "empty-row" } }, [td]);
}

function onActivate(tbody, handler) {
  tbody.addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-key]");
    if (row) handler(row);
  });
  tbody.addEventListener("keydown", (event) => {
    const row = event.target.closest("tr[data-key]");
    if (row && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      handler(row);
    }
  });
}

function cdrRow(cdr) {
  const attrs = {
    "data-testid": "cdr-row",
    "data-key": cdr.id,
    "data-diallogid": cdr.diallogid,
    tabindex: 0,
    title: `Open the timeline of call ${cdr.diallogid}`,
  };
  return el("tr", { attrs }, [
    cell("starttime", timeNode(cdr.starttime)),
    cell("orgidentity", cdr.orgidentity),
    cell("agentno", cdr.agentno),
    cell("agent_group", cdr.agent_group),
    cell("calltype", calltypeNode(cdr.calltype)),
    cell("src", cdr.src, "number"),
    cell("dst", cdr.dst, "number"),
    cell("duration", clock(cdr.duration), "num"),
    cell("billsec", clock(cdr.billsec), "num"),
    // Most calls are never held: their zero stays quiet so a held call stands out.
    cell("hold_seconds", clock(cdr.hold_seconds), cdr.hold_seconds ? "num" : "num muted"),
    cell("disposition", dispositionBadge(cdr.disposition)),
    cell("status", statusBadge(cdr.status)),
  ]);
}

export class CdrTable {
  constructor(tbody, onOpen) {
    this.tbody = tbody;
    this.rows = new Map();
    this.primed = false;
    onActivate(tbody, (row) => onOpen(Number(row.dataset.key)));
  }

  reset() {
    this.rows = new Map();
    this.primed = false;
    this.tbody.replaceChildren(emptyRow(CDR_COLUMNS, "Loading…"));
  }

  render(cdrs, emptyText) {
    const kept = new Map();
    const nodes = cdrs.map((cdr) => {
      const cached = this.rows.get(cdr.id);
      const stamp = `${cdr.updated_at}|${cdr.starttime}`;
      let row = cached && cached.stamp === stamp ? cached.row : null;
      if (!row) {
        row = cdrRow(cdr);
        // Rows that arrive while the page is watched flash once; the first load does not.
        if (this.primed && !cached) row.classList.add("fresh");
      }
      kept.set(cdr.id, { row, stamp });
      return row;
    });
    this.rows = kept;
    this.primed = true;
    reconcile(this.tbody, nodes.length ? nodes : [emptyRow(CDR_COLUMNS, emptyText)]);
  }
}

function openRow(cdr) {
  const ringing = !cdr.answertime;
  const state = el("span", {
    className: `status ${ringing ? "status-ringing" : "status-talking"}`,
    text: ringing ? "Ringing" : "Talking",
  });
  const agent = el("span", {}, [
    cdr.agentno ?? "—",
    el("span", { className: "team-tag", text: cdr.orgidentity }),
  ]);
  const route = el("span", { className: "number" }, [
    cdr.src ?? "—",
    el("span", { className: "arrow", text: " → " }),
    cdr.dst ?? "—",
  ]);
  const since = Date.parse(cdr.starttime);
  const attrs = { "data-testid": "open-row", "data-key": cdr.id, tabindex: 0 };
  return el("tr", { attrs }, [
    cell("starttime", timeNode(cdr.starttime, { date: false })),
    cell("agentno", agent),
    cell("route", route),
    cell("state", state),
    el("td", { className: "num elapsed", attrs: { "data-since": since, "data-col": "elapsed" } }),
  ]);
}

export class OpenTable {
  constructor(tbody, onOpen) {
    this.tbody = tbody;
    onActivate(tbody, (row) => onOpen(Number(row.dataset.key)));
  }

  render(cdrs) {
    const rows = cdrs.map(openRow);
    this.tbody.replaceChildren(...(rows.length ? rows : [emptyRow(5, "No call in progress")]));
    this.tick();
  }

  tick(now = Date.now()) {
    for (const td of this.tbody.querySelectorAll("td[data-since]")) {
      td.textContent = clock((now - Number(td.dataset.since)) / 1000);
    }
  }
}

function agentRow(stats) {
  const attrs = {
    "data-testid": "agent-row",
    "data-key": stats.group,
    "data-team": stats.team ?? "",
    tabindex: stats.group ? 0 : -1,
    title: stats.group ? `Show only agent ${stats.group}'s calls` : "Calls without an agent",
  };
  return el("tr", { attrs }, [
    cell("agent", stats.group || "no agent", stats.group ? "" : "muted"),
    cell("team", stats.team),
    cell("calls", count(stats.calls), "num"),
    cell("answered", count(stats.answered), "num"),
    cell("asr", percent(stats.asr), "num"),
    cell("acd", clock(stats.acd), "num"),
    cell("talk_time", hms(stats.talk_time), "num"),
  ]);
}

export class AgentTable {
  constructor(tbody, onPick) {
    this.tbody = tbody;
    onActivate(tbody, (row) => {
      if (row.dataset.key) onPick(row.dataset.key, row.dataset.team);
    });
  }

  render(rows) {
    const sorted = [...rows].sort((a, b) => b.calls - a.calls || a.group.localeCompare(b.group));
    const nodes = sorted.map(agentRow);
    this.tbody.replaceChildren(...(nodes.length ? nodes : [emptyRow(7, "No calls")]));
  }
}

// Totals of the filtered set, from the per-hour rows (every CDR is in exactly one hour).
export function renderTotals(root, hourRows) {
  const sum = (name) => hourRows.reduce((total, row) => total + (row[name] ?? 0), 0);
  const calls = sum("calls");
  const answered = sum("answered");
  const ringWeighted = hourRows.reduce((t, r) => t + (r.avg_ring_time ?? 0) * r.answered, 0);
  const values = {
    calls: count(calls),
    answered: count(answered),
    asr: calls ? percent(answered / calls) : "—",
    acd: answered ? clock(sum("talk_time") / answered) : "—",
    talk: hms(sum("talk_time")),
    ring: answered ? clock(ringWeighted / answered) : "—",
  };
  for (const [name, text] of Object.entries(values)) {
    root.querySelector(`[data-kpi="${name}"]`).textContent = text;
  }
}
