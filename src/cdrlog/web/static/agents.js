// Agents now: each agent's state as a coloured chip and how long it has lasted. The
// states come with every poll (GET /api/v1/agents); the time in state ticks in between.

import { getJson } from "./api.js";
import { el, reconcile } from "./dom.js";
import { AGENT_STATES, agentStateChip, lasting } from "./format.js";

// The order a supervisor reads the summary in: who can take a call, who is busy, who is away.
const SUMMARY_ORDER = ["available", "on_call", "after_call_work", "paused", "logged_out"];

function keyOf(agent) {
  return `${agent.orgidentity}\u0000${agent.agentno}`;
}

function stampOf(agent) {
  return [agent.state, agent.state_since, agent.phone, agent.agent_group].join("\u0000");
}

function tile(agent) {
  const since = agent.state_since ? Date.parse(agent.state_since) : NaN;
  const details = [agent.phone, agent.agent_group && `queue ${agent.agent_group}`];
  const described = [agent.phone && `phone ${agent.phone}`, details[1]].filter(Boolean);
  const attrs = {
    "data-testid": "agent-tile",
    "data-agent": agent.agentno,
    "data-team": agent.orgidentity,
    "data-state": agent.state,
    tabindex: 0,
    title: `Show only agent ${agent.agentno}'s calls`,
  };
  const chip = agentStateChip(agent.state);
  chip.dataset.testid = "agent-state";
  return el("li", { className: "agent-tile", attrs }, [
    el("span", { className: "agent-who" }, [
      el("strong", { text: agent.agentno }),
      el("span", { className: "team-tag", text: agent.orgidentity }),
    ]),
    chip,
    el("span", {
      className: "agent-meta",
      text: details.filter(Boolean).join(" · ") || "—",
      attrs: { title: described.join(", ") || null },
    }),
    el("span", {
      className: "agent-for",
      attrs: {
        "data-testid": "agent-for",
        "data-since": Number.isNaN(since) ? null : since,
        title: agent.state_since ? `since ${agent.state_since}` : "never reported a state",
      },
    }),
  ]);
}

function summary(agents) {
  const counts = new Map();
  for (const agent of agents) counts.set(agent.state, (counts.get(agent.state) ?? 0) + 1);
  const known = SUMMARY_ORDER.filter((state) => counts.has(state));
  const other = [...counts.keys()].filter((state) => !Object.hasOwn(AGENT_STATES, state));
  return [...known, ...other].map((state) =>
    el("span", { className: "agent-count", attrs: { "data-state": state } }, [
      agentStateChip(state),
      el("strong", { text: counts.get(state) }),
    ]),
  );
}

export class AgentBoard {
  constructor(root, onPick) {
    this.list = root.querySelector('[data-testid="agent-board"]');
    this.summary = root.querySelector('[data-testid="agent-summary"]');
    this.count = root.querySelector('[data-testid="agent-count"]');
    this.tiles = new Map();
    const pick = (event) => {
      const found = event.target.closest("li[data-agent]");
      if (found) onPick(found.dataset.agent, found.dataset.team);
    };
    this.list.addEventListener("click", pick);
    this.list.addEventListener("keydown", (event) => {
      if (event.key !== "Enter" && event.key !== " ") return;
      event.preventDefault();
      pick(event);
    });
  }

  // `params`: the team filter and the zone, as every other read of the page.
  async load(params, signal) {
    const answer = await getJson("/api/v1/agents", params, signal);
    return answer.agents;
  }

  render(agents) {
    const kept = new Map();
    const nodes = agents.map((agent) => {
      const key = keyOf(agent);
      const stamp = stampOf(agent);
      const cached = this.tiles.get(key);
      // A tile that did not change keeps its node, and so its focus and hover.
      const node = cached && cached.stamp === stamp ? cached.node : tile(agent);
      kept.set(key, { node, stamp });
      return node;
    });
    this.tiles = kept;
    const empty = el("li", { className: "empty", text: "No agent seen yet" });
    reconcile(this.list, nodes.length ? nodes : [empty]);
    this.summary.replaceChildren(...summary(agents));
    this.count.textContent = String(agents.length);
    this.tick();
  }

  tick(now = Date.now()) {
    for (const node of this.list.querySelectorAll(".agent-for")) {
      const since = node.dataset.since;
      node.textContent = since === undefined ? "" : lasting((now - Number(since)) / 1000);
    }
  }
}
