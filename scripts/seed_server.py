"""The seed's approach, served for the push benchmark: its PHP script behind nginx and
php-fpm (Debian's packages), on MariaDB, so that cdrlog is compared with it measured in
the same run rather than with a figure from another day.

`bench_seed/` beside this file holds the script (`cdr.php`, written from the seed's
outline), its tables and the configuration templates. `serving` renders them into a
folder of the run's, starts php-fpm and nginx in the foreground as the current user on a
port of their own (no system service is touched), and stops both afterwards. `check`
then says how many calls got exactly their CDR, and how many a duplicated, wrong or no
row: the seed knows neither inbound calls nor re-sent events nor late ones.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

from cdrlog.sim.traffic import ExpectedCdr
from cdrlog.store.database import make_engine

SEED = Path(__file__).resolve().parent / "bench_seed"
URL = "mysql+pymysql://root@127.0.0.1:3306/cdrlog_perf_seed"
# php-fpm children: enough for both cores, as each mostly waits on MariaDB's commits.
CHILDREN = 8
# The columns the seed's script sets, in the order `seed_view` gives them.
COLUMNS = "target, src, dst, agentno, starttime, answertime, endtime, disposition"
Row = tuple[object, ...]


@dataclass(frozen=True, slots=True)
class Tools:
    nginx: str
    php_fpm: str


def find_tools() -> Tools | str:
    """nginx and php-fpm with mysqli, or why the seed cannot be served here."""
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    candidates = sorted(glob.glob("/usr/sbin/php-fpm*")) or [shutil.which("php-fpm") or ""]
    php_fpm = candidates[-1]
    if nginx is None or not php_fpm:
        return "needs nginx and php-fpm (scripts/ensure-bench-tools installs them)"
    modules = subprocess.run(
        [php_fpm, "-c", str(SEED / "php.ini"), "-m"],
        capture_output=True,
        text=True,
        env=php_environment(),
        check=False,
    ).stdout
    if "mysqli" not in modules.split():
        return "php-fpm has no mysqli (apt-get install php-mysql)"
    return Tools(nginx, php_fpm)


def php_environment() -> dict[str, str]:
    # Debian's conf.d would load every extension installed: only the bench's php.ini.
    return dict(os.environ, PHP_INI_SCAN_DIR="")


def reset_schema(url: str) -> None:
    """The seed's tables, empty (the database must exist)."""
    statements = [s.strip() for s in (SEED / "schema.sql").read_text().split(";")]
    engine = make_engine(url)
    with engine.begin() as connection:
        for statement in statements:
            body = "\n".join(x for x in statement.splitlines() if not x.startswith("--"))
            if body.strip():
                connection.exec_driver_sql(body)
    engine.dispose()


@dataclass(frozen=True, slots=True)
class SeedServer:
    """The running seed: the process trees to meter, the logs to read after a failure."""

    pids: tuple[int, ...]
    logs: tuple[Path, ...]


def render(folder: Path, url: str, host: str, port: int) -> dict[str, Path]:
    """The templates with this run's folder, port and database filled in."""
    parsed = make_url(url)
    root = os.geteuid() == 0
    user = pwd.getpwuid(os.geteuid()).pw_name
    values = {
        "@DIR@": str(folder),
        "@HOST@": host,
        "@PORT@": str(port),
        "@SCRIPT@": str(SEED / "cdr.php"),
        "@CHILDREN@": str(CHILDREN),
        "@DB_HOST@": parsed.host or "127.0.0.1",
        "@DB_PORT@": str(parsed.port or 3306),
        "@DB_USER@": parsed.username or "root",
        # php-fpm refuses an empty value: no password, no line.
        "@DB_PASSWORD@": f"env[SEED_DB_PASSWORD] = {parsed.password}" if parsed.password else "",
        "@DB_NAME@": parsed.database or "",
    }
    rendered = {}
    for name in ("nginx.conf", "php-fpm.conf", "fastcgi.params"):
        content = (SEED / name).read_text()
        # As root, both name the user outright: nginx's workers would be nobody's.
        user_line = {"nginx.conf": f"user {user};", "php-fpm.conf": f"user = {user}"}
        content = content.replace("@USER@", user_line.get(name, "") if root else "")
        for key, value in values.items():
            content = content.replace(key, value)
        rendered[name] = folder / name
        rendered[name].write_text(content)
    return rendered


@contextlib.contextmanager
def serving(tools: Tools, url: str, folder: Path, host: str, port: int) -> Iterator[SeedServer]:
    """php-fpm and nginx serving the seed's script on `port` until the block ends."""
    folder.mkdir(parents=True, exist_ok=True)
    files = render(folder, url, host, port)
    php = [tools.php_fpm, "-F", "-y", str(files["php-fpm.conf"]), "-c", str(SEED / "php.ini")]
    php += ["-R"] if os.geteuid() == 0 else []
    web = [tools.nginx, "-c", str(files["nginx.conf"]), "-p", str(folder)]
    web += ["-e", str(folder / "nginx-error.log")]
    logs = (folder / "php-fpm.log", folder / "nginx-error.log", folder / "seed-stdout.log")
    with contextlib.ExitStack() as stack:
        fpm = stack.enter_context(started(php, logs[2], php_environment()))
        nginx = stack.enter_context(started(web, logs[2], dict(os.environ)))
        wait_until_healthy(host, port, (fpm, nginx), logs)
        yield SeedServer((fpm.pid, nginx.pid), logs)


@contextlib.contextmanager
def started(
    command: list[str], log: Path, environment: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    """`command` running in its own process group; stopped (SIGTERM, then SIGKILL) after."""
    with log.open("ab") as output:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_until_healthy(
    host: str, port: int, processes: tuple[subprocess.Popen[bytes], ...], logs: tuple[Path, ...]
) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            raise RuntimeError(f"nginx or php-fpm exited early:\n{tails(logs)}")
        try:
            if httpx.get(f"http://{host}:{port}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the seed did not answer /healthz within 30 s:\n{tails(logs)}")


def tails(logs: tuple[Path, ...]) -> str:
    return "\n".join(
        f"{log.name}: {log.read_text(errors='replace')[-1500:]}" for log in logs if log.exists()
    )


@dataclass(frozen=True, slots=True)
class SeedCdrs:
    """Per call sent: exactly its CDR, two rows or more, one wrong row, or none; and rows
    of no call sent. Only the columns the seed sets are compared."""

    exact: int
    duplicated: int
    wrong: int
    missing: int
    calls: int
    unexpected: int

    @property
    def ok(self) -> bool:
        return self.exact == self.calls and self.unexpected == 0

    def shown(self) -> str:
        return (
            f"{self.exact:,}/{self.calls:,}; {self.duplicated:,} dup., "
            f"{self.wrong:,} wrong, {self.missing:,} none"
        )


def check(url: str, wanted: Mapping[tuple[str, str], ExpectedCdr]) -> SeedCdrs:
    """The seed's rows against the calls' expected CDRs."""
    engine = make_engine(url)
    rows: dict[tuple[str, str], list[Row]] = {}
    with engine.connect() as connection:
        query = text(f"SELECT orgidentity, diallogid, {COLUMNS} FROM cdr")
        for row in connection.execute(query):
            rows.setdefault((row[0], row[1]), []).append(tuple(row[2:]))
    engine.dispose()
    counts = {"exact": 0, "duplicated": 0, "wrong": 0, "missing": 0}
    for key, expected in wanted.items():
        counts[verdict(rows.get(key, []), seed_view(expected))] += 1
    return SeedCdrs(**counts, calls=len(wanted), unexpected=len(rows.keys() - wanted.keys()))


def verdict(found: list[Row], expected: Row) -> str:
    if not found:
        return "missing"
    if len(found) > 1:
        return "duplicated"
    return "exact" if found[0] == expected else "wrong"


def seed_view(one: ExpectedCdr) -> Row:
    """An expected CDR as the seed's row holds it: naive UTC times."""
    return (
        one.target,
        one.src,
        one.dst,
        one.agentno,
        naive(one.starttime),
        naive(one.answertime),
        naive(one.endtime),
        one.disposition,
    )


def naive(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC).replace(tzinfo=None)
