// The token rollout, as an operator follows it: which teams still push without a token
// while their push-auth mode accepts it, so that nobody requires tokens while asterCC
// still sends without one. Read every 30 s: it changes as URLs are edited, not per call.

import { getJson } from "./api.js";
import { el } from "./dom.js";
import { count, timeNode } from "./format.js";

const EVERY_MS = 30000;

export class RolloutNotice {
  constructor(node) {
    this.node = node;
    this.readAt = 0;
  }

  async refresh(tz, signal) {
    if (Date.now() - this.readAt < EVERY_MS) return;
    this.readAt = Date.now();
    let answer;
    try {
      answer = await getJson("/api/v1/push-auth", new URLSearchParams({ tz }), signal);
    } catch (error) {
      if (error.name === "AbortError") throw error;
      return; // an aside: the CDRs' own polling reports what is wrong
    }
    this.render(answer);
  }

  reset() {
    this.readAt = 0;
    this.node.hidden = true;
    this.node.replaceChildren();
  }

  render(answer) {
    const accepting = answer.teams.filter((team) => team.mode !== "required");
    const open = answer.default_mode !== "required" || accepting.length > 0;
    this.node.hidden = !answer.tokens || !open;
    if (this.node.hidden) return;
    const sending = accepting.filter((team) => team.tokenless_pushes > 0);
    const parts = [el("strong", { text: "Token rollout: " })];
    if (sending.length === 0) {
      parts.push("pushes without a token are still accepted; none has arrived yet.");
    } else {
      parts.push("still pushing without a token: ");
      sending.forEach((team, index) => {
        if (index) parts.push(", ");
        parts.push(
          el("span", { className: "rollout-team", attrs: { "data-team": team.team } }, [
            el("b", { text: team.team }),
            ` (${count(team.tokenless_pushes)} event${team.tokenless_pushes === 1 ? "" : "s"}, last `,
            timeNode(team.last_tokenless_at),
            ")",
          ]),
        );
      });
      parts.push(". ");
    }
    parts.push(
      " Once a team's last tokenless push stops moving: ",
      el("code", { text: "cdrlog token mode TEAM required" }),
      ".",
    );
    this.node.replaceChildren(...parts);
  }
}
