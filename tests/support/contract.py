"""The contract's CDR columns, as the API must show them."""

from __future__ import annotations

CONTRACT_COLUMNS = [
    "id",
    "orgidentity",
    "diallogid",
    "calltype",
    "target",
    "src",
    "dst",
    "agentno",
    "starttime",
    "answertime",
    "endtime",
    "duration",
    "billsec",
    "disposition",
    "status",
    "did",
    "agent_group",
    "hold_seconds",
    "transferred_to",
    "created_at",
    "updated_at",
]
