"""The pure core imports the stdlib and itself, and reads no clock and no randomness.

Checked on the source text with `ast`, so nothing is imported to test it.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import cdrlog

PACKAGE = Path(cdrlog.__file__).parent
CORE = (
    "cdrlog.times",
    "cdrlog.events",
    "cdrlog.rules",
    "cdrlog.cdr",
    "cdrlog.agentstate",
    "cdrlog.bodies",
    "cdrlog.excerpts",
)
# Stdlib modules that are IO, clocks, randomness or process state: not for the core.
IMPURE_STDLIB = frozenset(
    {
        "asyncio",
        "logging",
        "os",
        "random",
        "secrets",
        "shutil",
        "socket",
        "sqlite3",
        "subprocess",
        "sys",
        "tempfile",
        "threading",
        "time",
        "uuid",
    }
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
    path = PACKAGE.joinpath(*module.split(".")[1:]).with_suffix(".py")
    return path.read_text(encoding="utf-8")


def imports(code: str, module: str) -> set[str]:
    """Every module `code` imports, relative imports resolved against `module`."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = module.split(".")[: -node.level] if node.level else []
            origin = ".".join([*base, node.module] if node.module else base)
            if origin == "cdrlog":
                # `from cdrlog import events` / `from . import events`: submodules.
                found.update(f"cdrlog.{alias.name}" for alias in node.names)
            else:
                found.add(origin)
    return found


def foreign_imports(code: str, module: str) -> set[str]:
    """Imports that are neither harmless stdlib nor another core module."""
    allowed_stdlib = sys.stdlib_module_names - IMPURE_STDLIB
    return {
        name
        for name in imports(code, module)
        if name not in CORE and name.split(".")[0] not in allowed_stdlib
    }


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
def test_core_module_imports_only_stdlib_and_core(module: str) -> None:
    assert foreign_imports(source(module), module) == set()


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


def test_core_modules_exist() -> None:
    for module in CORE:
        assert source(module).strip(), module


# --- The checks themselves catch what they are for ---------------------------------------


def test_third_party_and_shell_imports_are_caught() -> None:
    code = (
        "import sqlalchemy\n"
        "from fastapi import FastAPI\n"
        "from cdrlog.storage import cdr\n"
        "from . import ingest\n"
        "from cdrlog import rules\n"
        "import logging\n"
        "import re, json\n"
        "from collections.abc import Mapping\n"
        "from cdrlog.events import CallEvent\n"
        "from .rules import RULES\n"
    )
    assert foreign_imports(code, "cdrlog.cdr") == {
        "sqlalchemy",
        "fastapi",
        "cdrlog.storage",
        "cdrlog.ingest",
        "logging",
    }


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
