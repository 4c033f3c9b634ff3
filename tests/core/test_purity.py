"""The pure core reads no clock and no randomness and does no work at import.

Checked on the source text with `ast`, so nothing is imported to test it. Which modules
the core may import is the import-linter contract in `pyproject.toml`, run by `make lint`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import cdrlog.core

CORE_PACKAGE = Path(cdrlog.core.__file__).parent
# What the core may import is the import-linter contract in pyproject.toml (`make lint`);
# these checks cover what an import contract cannot see: calls and import-time work.
CORE = tuple(
    sorted(
        f"cdrlog.core.{path.stem}" for path in CORE_PACKAGE.glob("*.py") if path.stem != "__init__"
    )
)
# Calls that read the clock or draw randomness; time and ids come in as arguments.
IMPURE_CALLS = frozenset(
    {
        "now",
        "utcnow",
        "today",
        "time",
        "time_ns",
        "monotonic",
        "perf_counter",
        "uuid1",
        "uuid4",
        "random",
        "randint",
        "token_hex",
    }
)


def source(module: str) -> str:
    return CORE_PACKAGE.joinpath(module.rsplit(".", 1)[1]).with_suffix(".py").read_text("utf-8")


def impure_calls(code: str) -> set[str]:
    """Names of clock and randomness calls, as `now(...)` or `datetime.now(...)`."""
    called: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Call):
            function = node.func
            if isinstance(function, ast.Attribute):
                called.add(function.attr)
            elif isinstance(function, ast.Name):
                called.add(function.id)
    return called & IMPURE_CALLS


@pytest.mark.parametrize("module", CORE)
def test_core_module_reads_no_clock_and_no_randomness(module: str) -> None:
    assert impure_calls(source(module)) == set()


@pytest.mark.parametrize("module", CORE)
def test_core_module_has_no_import_time_statements_beyond_definitions(module: str) -> None:
    # Module level holds imports, constants and definitions: no bare call, no loop, no
    # `with` or `try` doing work when the module is imported.
    for node in ast.parse(source(module)).body:
        assert not isinstance(node, ast.Expr) or isinstance(node.value, ast.Constant), (
            f"{module}: a bare expression at line {node.lineno} runs at import"
        )
        assert not isinstance(node, ast.With | ast.For | ast.While | ast.Try), (
            f"{module}: statement at line {node.lineno} runs at import"
        )


def test_the_core_holds_the_fold_and_its_vocabulary() -> None:
    for name in ("events", "rules", "cdr", "times", "agentstate"):
        assert f"cdrlog.core.{name}" in CORE


# --- The checks themselves catch what they are for ---------------------------------------


def test_clock_and_id_calls_are_caught() -> None:
    code = (
        "from datetime import datetime\n"
        "import uuid\n"
        "STARTED = datetime.now()\n"
        "def make():\n"
        "    return uuid.uuid4(), datetime.utcnow(), now()\n"
        "def fine(moment):\n"
        "    return datetime(2026, 1, 5), moment.astimezone()\n"
    )
    assert impure_calls(code) == {"now", "uuid4", "utcnow"}
