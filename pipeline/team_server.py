"""A team tracking server on one machine: PostgreSQL for runs, a directory for artifacts, ``mlflow server``.

For a shared server the pipeline only needs ``MLFLOW_TRACKING_URI=http://<host>:<port>``; this module
starts one locally (what the test does, and what a user can run to try the set-up)::

    python -m pipeline.team_server --dir /var/tmp/mlflow-team --port 5000

It creates a PostgreSQL cluster in ``<dir>/postgres`` (``initdb`` as the ``postgres`` user when run as
root, since PostgreSQL refuses to run as root), starts it on 127.0.0.1 only, creates a role and a
database, then runs ``mlflow server`` with that database as backend store and ``<dir>/artifacts`` as
artifact destination, waits until ``/health`` answers and stops both on Ctrl-C. Running it again on
the same directory reuses the cluster and its runs.
"""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, NoReturn, Sequence

#: the OS user PostgreSQL runs as when this module runs as root
POSTGRES_OS_USER = "postgres"
#: PostgreSQL server programs this module needs
SERVER_PROGRAMS = ("initdb", "pg_ctl")
INSTALL_HINT = "install them with: apt-get install -y postgresql"


class TeamServerError(RuntimeError):
    """A server could not be started or stopped; the message is one line saying why."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def check_port_free(port: int, host: str = "127.0.0.1", what: str = "server") -> None:
    """Raise :class:`TeamServerError` when ``host:port`` is already taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            message = f"port {port} on {host} is already in use; pick another port for the {what}"
            raise TeamServerError(message) from None


def postgres_bin_dir() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``: on PATH, else the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    candidates = sorted(
        (Path(path) for path in glob.glob("/usr/lib/postgresql/*/bin")
         if all(Path(path, program).is_file() for program in SERVER_PROGRAMS)),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    if not candidates:
        raise TeamServerError(f"PostgreSQL server programs ({', '.join(SERVER_PROGRAMS)}) not found on PATH "
                              f"or in /usr/lib/postgresql/*/bin; {INSTALL_HINT}")
    return candidates[-1]


def _as_postgres_user(command: Sequence[str]) -> list[str]:
    """``command`` run as the postgres OS user when we are root (PostgreSQL refuses root), else as is."""
    if os.geteuid() != 0:
        return list(command)
    try:
        pwd.getpwnam(POSTGRES_OS_USER)
    except KeyError:
        raise TeamServerError(f"running as root but there is no OS user {POSTGRES_OS_USER!r}; {INSTALL_HINT}") from None
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", POSTGRES_OS_USER, "--", *command]
    return ["su", POSTGRES_OS_USER, "-s", "/bin/sh", "-c", " ".join(map(_quote, command))]


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def _run(command: Sequence[str], what: str, log: Path | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        if log is not None and log.is_file():
            detail += log.read_text(errors="replace").strip().splitlines()[-5:]
        raise TeamServerError(f"{what} failed (exit {result.returncode}): {' | '.join(detail[-6:])}")


@dataclass
class Postgres:
    """A running PostgreSQL cluster listening on ``127.0.0.1:port``, reached with ``user``/``password``."""

    directory: Path
    port: int
    user: str
    password: str
    database: str
    bin_dir: Path

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def socket_dir(self) -> Path:
        return self.directory / "socket"

    @property
    def log_file(self) -> Path:
        return self.directory / "postgres.log"

    @property
    def url(self) -> str:
        """The SQLAlchemy URL MLflow's ``--backend-store-uri`` takes; the driver is named because
        SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3, and psycopg2 is what is installed."""
        from urllib.parse import quote

        credentials = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"
        return f"postgresql+psycopg2://{credentials}@127.0.0.1:{self.port}/{self.database}"

    def stop(self) -> None:
        """Stop the cluster (fast shutdown: open sessions are ended); nothing if it is not running."""
        if not (self.data_dir / "postmaster.pid").exists():
            return
        _run(_as_postgres_user([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"]),
             "pg_ctl stop")


def start_postgres(directory: Path, port: int | None = None, user: str = "mlflow", password: str = "mlflow",
                   database: str = "mlflow") -> Postgres:
    """Start a cluster in ``directory`` (created with ``initdb`` on first use) on 127.0.0.1:``port``.

    On first use also creates a login role ``user`` with ``password`` and a database ``database``
    it owns. Local connections (the socket in ``directory/socket``) are trusted, TCP ones need the
    password (scram-sha-256). When run as root, ``directory`` is handed to the postgres OS user, so it
    must lie where that user can reach it (not under a private directory such as /root or pytest's
    /tmp/pytest-of-root).
    """
    bin_dir = postgres_bin_dir()
    port = port or free_port()
    check_port_free(port, what="PostgreSQL")
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    pg = Postgres(directory, port, user, password, database, bin_dir)
    pg.socket_dir.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        owner = pwd.getpwnam(POSTGRES_OS_USER)
        for path in (directory, pg.socket_dir):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        probe = subprocess.run(_as_postgres_user(["test", "-w", str(directory)]), capture_output=True)
        if probe.returncode != 0:
            raise TeamServerError(f"{directory} is not reachable by the OS user {POSTGRES_OS_USER!r}: a parent "
                                  "directory is private (mode 0700?); chmod o+x it or choose another directory")
    if not (pg.data_dir / "PG_VERSION").is_file():
        _run(_as_postgres_user([str(bin_dir / "initdb"), "-D", str(pg.data_dir), "-U", "postgres", "-E", "UTF8",
                                "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256"]), "initdb")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {_quote(str(pg.socket_dir))}"
    _run(_as_postgres_user([str(bin_dir / "pg_ctl"), "-D", str(pg.data_dir), "-l", str(pg.log_file), "-o", options,
                            "-w", "-t", "60", "start"]), "pg_ctl start", pg.log_file)
    try:
        _ensure_role_and_database(pg)
    except Exception as exc:
        pg.stop()
        raise TeamServerError(f"creating role {user!r} and database {database!r} failed: {exc}".strip()) from exc
    return pg


def _ensure_role_and_database(pg: Postgres) -> None:
    """Create the login role and its database unless they exist (an existing role keeps its password)."""
    import psycopg2
    from psycopg2 import sql

    connection = psycopg2.connect(host=str(pg.socket_dir), port=pg.port, user="postgres", dbname="postgres")
    try:
        connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (pg.user,))
            if cursor.fetchone() is None:
                cursor.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(pg.user),
                                                                                 sql.Literal(pg.password)))
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (pg.database,))
            if cursor.fetchone() is None:
                cursor.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(pg.database),
                                                                            sql.Identifier(pg.user)))
    finally:
        connection.close()


@dataclass
class MlflowServer:
    """A running ``mlflow server`` process (its own process group, so its workers stop with it)."""

    process: subprocess.Popen
    host: str
    port: int
    log_file: Path
    _log: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """What ``MLFLOW_TRACKING_URI`` is set to for this server."""
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 20.0) -> None:
        """Terminate the server and its workers; kill them if they have not exited after ``timeout`` s."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
            except ProcessLookupError:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None


def mlflow_command() -> list[str]:
    """The ``mlflow`` CLI of this interpreter's environment."""
    beside = Path(sys.executable).parent / "mlflow"
    if beside.is_file():
        return [str(beside)]
    return [sys.executable, "-m", "mlflow"]


def start_mlflow_server(backend_store_uri: str, artifacts_destination: Path, port: int | None = None,
                        host: str = "127.0.0.1", workers: int = 1, allowed_hosts: str | None = None,
                        log_file: Path | None = None, timeout: float = 120.0, jobs: bool = False) -> MlflowServer:
    """Start ``mlflow server`` on ``host:port`` over ``backend_store_uri``, artifacts proxied to a directory.

    Returns once ``/health`` answers (the first start on an empty database creates MLflow's tables,
    a few seconds). ``allowed_hosts`` is passed to ``--allowed-hosts`` (needed when clients reach the
    server by a name other than localhost or a private IP). ``jobs`` keeps MLflow's background job
    runner (GenAI scorers, trace archival: eight more Python processes), which the pipeline does not use.
    """
    port = port or free_port()
    check_port_free(port, host, what="MLflow server")
    artifacts_destination = Path(artifacts_destination).resolve()
    artifacts_destination.mkdir(parents=True, exist_ok=True)
    log_file = Path(log_file or artifacts_destination.parent / "mlflow-server.log")
    # the store URI (it holds the database password) goes by environment, not on the visible command line
    command = [*mlflow_command(), "server", "--artifacts-destination", str(artifacts_destination),
               "--host", host, "--port", str(port), "--workers", str(workers)]
    if allowed_hosts:
        command += ["--allowed-hosts", allowed_hosts]
    env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": backend_store_uri,
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": str(jobs).lower()}
    log = open(log_file, "ab")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               env=env, start_new_session=True)
    server = MlflowServer(process, "127.0.0.1" if host == "0.0.0.0" else host, port, log_file, log)
    try:
        _wait_healthy(server, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_healthy(server: MlflowServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = server.log_file.read_text(errors="replace").strip().splitlines()[-3:]
            raise TeamServerError(f"mlflow server exited with code {server.process.returncode}: {' | '.join(tail)}")
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise TeamServerError(f"mlflow server did not answer {server.url}/health within {timeout:.0f} s; "
                          f"see {server.log_file}")


@dataclass
class TeamServer:
    """PostgreSQL plus ``mlflow server`` over it; ``url`` is the tracking URI."""

    postgres: Postgres
    mlflow: MlflowServer

    @property
    def url(self) -> str:
        return self.mlflow.url

    def stop(self) -> None:
        """Stop MLflow, then PostgreSQL."""
        try:
            self.mlflow.stop()
        finally:
            self.postgres.stop()


def start_team_server(directory: Path, port: int | None = None, pg_port: int | None = None,
                      host: str = "127.0.0.1", password: str = "mlflow",
                      allowed_hosts: str | None = None) -> TeamServer:
    """PostgreSQL in ``directory/postgres`` and ``mlflow server`` with artifacts in ``directory/artifacts``."""
    directory = Path(directory).resolve()
    if port:
        check_port_free(port, host, what="MLflow server")
    postgres = start_postgres(directory / "postgres", pg_port, password=password)
    try:
        mlflow = start_mlflow_server(postgres.url, directory / "artifacts", port, host, allowed_hosts=allowed_hosts,
                                     log_file=directory / "mlflow-server.log")
    except BaseException:
        postgres.stop()
        raise
    return TeamServer(postgres, mlflow)


@contextmanager
def team_server(directory: Path, port: int | None = None, pg_port: int | None = None,
                host: str = "127.0.0.1") -> Iterator[TeamServer]:
    """:func:`start_team_server` as a context manager that stops both servers on exit, even on error."""
    server = start_team_server(directory, port, pg_port, host)
    try:
        yield server
    finally:
        server.stop()


def _interrupt(signum: int, frame: Any) -> NoReturn:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.team_server",
        description="Run a local MLflow tracking server backed by PostgreSQL until Ctrl-C; then point the "
                    "pipeline at it with MLFLOW_TRACKING_URI=http://HOST:PORT dvc repro.")
    parser.add_argument("--dir", type=Path, required=True,
                        help="where the PostgreSQL cluster (postgres/), artifacts (artifacts/) and logs live; "
                             "reused when it exists (as root: somewhere the postgres user can reach, "
                             "e.g. /var/tmp/mlflow-team)")
    parser.add_argument("--host", default="127.0.0.1", help="interface MLflow listens on (default 127.0.0.1; "
                        "0.0.0.0 for the whole network)")
    parser.add_argument("--port", type=int, default=5000, help="MLflow port (default 5000)")
    parser.add_argument("--pg-port", type=int, default=None, help="PostgreSQL port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--password", default=os.environ.get("TEAM_SERVER_DB_PASSWORD", "mlflow"),
                        help="password of the database role 'mlflow', set on first start "
                             "(default $TEAM_SERVER_DB_PASSWORD or 'mlflow')")
    parser.add_argument("--allowed-hosts", default=None,
                        help="passed to mlflow server --allowed-hosts, e.g. 'mlflow.example.com,10.0.0.5:5000'")
    args = parser.parse_args(argv)
    try:
        server = start_team_server(args.dir, args.port, args.pg_port, args.host, args.password, args.allowed_hosts)
    except TeamServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"MLflow tracking server on {server.url} (PostgreSQL 127.0.0.1:{server.postgres.port}, "
          f"artifacts {args.dir.resolve() / 'artifacts'}); Ctrl-C stops both.\n"
          f"  MLFLOW_TRACKING_URI={server.url} dvc repro", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while server.mlflow.process.poll() is None:
            time.sleep(1)
        print(f"error: mlflow server exited with code {server.mlflow.process.returncode}; "
              f"see {server.mlflow.log_file}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
