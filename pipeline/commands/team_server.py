"""A team tracking server on one machine: PostgreSQL for runs, a directory for artifacts, ``mlflow server``.

For a shared server the pipeline only needs ``MLFLOW_TRACKING_URI=http://<host>:<port>``; this module
starts one locally (what the test does, and what a user can run to try the set-up)::

    python -m pipeline.commands.team_server --dir /var/tmp/mlflow-team --port 5000

It creates a PostgreSQL cluster in ``<dir>/postgres`` (``initdb`` as the ``postgres`` user when run as
root, since PostgreSQL refuses to run as root), starts it on 127.0.0.1 only, creates a role and a
database, then runs ``mlflow server`` with that database as backend store and ``<dir>/artifacts`` as
artifact destination, waits until ``/health`` answers and stops both on Ctrl-C. Running it again on
the same directory reuses the cluster and its runs.

Every connection to the cluster needs a password (scram-sha-256, over the unix socket and over TCP),
and the socket directory is private to the cluster's owner (mode 0700). The superuser's password is
generated and kept in ``<dir>/postgres/superuser-password``; the password of the role ``mlflow``
comes from ``$MLFLOW_TEAM_DB_PASSWORD`` or ``--password-file``, else from ``<dir>/mlflow-db-password``
(written on the first start with a generated one). Both files are mode 0600. The password never goes
on a command line nor into a log: ``mlflow server`` gets the store URI through its environment.
A cluster made by older versions of this module (passwordless local connections, ``trust``) is
switched to passwords on its next start.
"""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, NoReturn, Sequence
from urllib.parse import quote

from pipeline.runtime.log_setup import configure_logging

#: the OS user PostgreSQL runs as when this module runs as root
POSTGRES_OS_USER = "postgres"
#: PostgreSQL server programs this module needs
SERVER_PROGRAMS = ("initdb", "pg_ctl")
INSTALL_HINT = "install them with: apt-get install -y postgresql"
#: environment variable holding the password of the database role ``mlflow``
PASSWORD_ENV = "MLFLOW_TEAM_DB_PASSWORD"
#: the same, under the name older versions read
OLD_PASSWORD_ENV = "TEAM_SERVER_DB_PASSWORD"
#: file in ``--dir`` keeping the role's password (mode 0600)
PASSWORD_FILE = "mlflow-db-password"
#: file in ``<dir>/postgres`` keeping the superuser's password (mode 0600, owned by the cluster's owner)
SUPERUSER_PASSWORD_FILE = "superuser-password"
SUPERUSER = "postgres"
#: the database sweep workers keep their Optuna study in (pipeline/commands/sweep.py)
SWEEP_DATABASE = "sweeps"
AUTH_METHOD = "scram-sha-256"


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


def _cluster_owner() -> tuple[int, int] | None:
    """(uid, gid) of the postgres OS user when we are root (the cluster's files are handed to it), else None."""
    if os.geteuid() != 0:
        return None
    try:
        owner = pwd.getpwnam(POSTGRES_OS_USER)
    except KeyError:
        raise TeamServerError(f"running as root but there is no OS user {POSTGRES_OS_USER!r}; {INSTALL_HINT}") from None
    return owner.pw_uid, owner.pw_gid


def _as_postgres_user(command: Sequence[str]) -> list[str]:
    """``command`` run as the postgres OS user when we are root (PostgreSQL refuses root), else as is."""
    if _cluster_owner() is None:
        return list(command)
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", POSTGRES_OS_USER, "--", *command]
    return ["su", POSTGRES_OS_USER, "-s", "/bin/sh", "-c", " ".join(map(shlex.quote, command))]


def _run(command: Sequence[str], what: str, log: Path | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        if log is not None and log.is_file():
            detail += log.read_text(errors="replace").strip().splitlines()[-5:]
        raise TeamServerError(f"{what} failed (exit {result.returncode}): {' | '.join(detail[-6:])}")


def write_secret(path: Path, text: str, owner: tuple[int, int] | None = None) -> None:
    """Replace ``path`` with ``text`` (plus a newline), readable only by its owner (mode 0600) from the start.

    ``owner`` (uid, gid) hands the file to another OS user (we must be root)."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(descriptor, "w") as handle:
            os.fchmod(handle.fileno(), 0o600)
            if owner is not None:
                os.fchown(handle.fileno(), *owner)
            handle.write(f"{text}\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_secret(path: Path, what: str = "password file", tighten: bool = True) -> str:
    """The password on the single line of ``path``; with ``tighten`` a file others may read is made
    private (0600) first."""
    try:
        if tighten and path.stat().st_mode & 0o077:
            path.chmod(0o600)
        text = path.read_text()
    except OSError as exc:
        raise TeamServerError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None
    password = text.rstrip("\r\n")
    if not password or "\n" in password:
        raise TeamServerError(f"the {what} {path} must hold the password alone on its first line")
    return password


def role_password(directory: Path, given: str | None = None) -> str:
    """The password of the role ``mlflow``: ``given``, else the one kept in ``directory/mlflow-db-password``,
    else a new random one; whichever it is ends up in that file (mode 0600) for later starts."""
    path = Path(directory) / PASSWORD_FILE
    if given is None and path.is_file():
        return read_secret(path)
    if given is not None and (not given or "\n" in given or "\r" in given):
        raise TeamServerError("the database password must be one non-empty line")
    password = given if given is not None else secrets.token_urlsafe(24)
    if not path.is_file() or read_secret(path) != password:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_secret(path, password)
    return password


def redact(uri: str) -> str:
    """``uri`` with its password shown as ``***``."""
    return re.sub(r"^([a-z0-9+.-]+://[^:/@]*):[^@]*@", r"\1:***@", uri, flags=re.IGNORECASE)


@dataclass
class Postgres:
    """A running PostgreSQL cluster listening on ``127.0.0.1:port``, reached with ``user``/``password``."""

    directory: Path
    port: int
    user: str
    password: str = field(repr=False)
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
    def superuser_password_file(self) -> Path:
        return self.directory / SUPERUSER_PASSWORD_FILE

    @property
    def url(self) -> str:
        """The SQLAlchemy URL MLflow's backend store takes, password included (keep it off command lines
        and logs; :attr:`redacted_url` is the one to show); the driver is named because SQLAlchemy 2.1
        maps a bare ``postgresql://`` to psycopg 3, and psycopg2 is what is installed."""
        credentials = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"
        return f"postgresql+psycopg2://{credentials}@127.0.0.1:{self.port}/{self.database}"

    @property
    def redacted_url(self) -> str:
        """:attr:`url` with ``***`` for the password."""
        return redact(self.url)

    @property
    def sweep_url(self) -> str:
        """The URL of the ``sweeps`` database, where sweep workers keep their Optuna study
        (``PIPELINE_SWEEP_STORAGE``; the password included, as in :attr:`url`)."""
        return self.url.rsplit("/", 1)[0] + "/" + SWEEP_DATABASE

    def stop(self) -> None:
        """Stop the cluster (fast shutdown: open sessions are ended); nothing if it is not running."""
        if not (self.data_dir / "postmaster.pid").exists():
            return
        _run(_as_postgres_user([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"]),
             "pg_ctl stop")


def _hba_trust_lines(hba: Path) -> list[int]:
    """Indexes of the lines of pg_hba.conf whose method is ``trust`` (no password asked)."""
    lines = hba.read_text().splitlines()
    return [i for i, line in enumerate(lines)
            if line.split("#", 1)[0].split() and line.split("#", 1)[0].split()[-1].lower() == "trust"]


def start_postgres(directory: Path, port: int | None = None, *, password: str, user: str = "mlflow",
                   database: str = "mlflow") -> Postgres:
    """Start a cluster in ``directory`` (created with ``initdb`` on first use) on 127.0.0.1:``port``.

    Makes sure a login role ``user`` with ``password`` and a database ``database`` it owns exist (the
    role's password is set to ``password`` on every start). Every connection needs a password
    (scram-sha-256), over TCP and over the unix socket in ``directory/socket``; ``directory`` and the
    socket directory are private to the cluster's owner (0700). The superuser ``postgres`` gets a
    random password, kept in ``directory/superuser-password`` (0600). A cluster whose pg_hba.conf
    still trusts local connections (made by older versions) gets that password and pg_hba.conf is
    rewritten to scram-sha-256. When run as root, ``directory`` is handed to the postgres OS user, so
    it must lie where that user can reach it (not under a private directory such as /root or pytest's
    /tmp/pytest-of-root); this process then reaches the cluster over 127.0.0.1 with the password.
    """
    bin_dir = postgres_bin_dir()
    port = port or free_port()
    check_port_free(port, what="PostgreSQL")
    owner = _cluster_owner()
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    pg = Postgres(directory, port, user, password, database, bin_dir)
    pg.socket_dir.mkdir(exist_ok=True)
    for path in (directory, pg.socket_dir):
        path.chmod(0o700)
        if owner is not None:
            os.chown(path, *owner)
    if owner is not None:
        probe = subprocess.run(_as_postgres_user(["test", "-w", str(directory)]), capture_output=True)
        if probe.returncode != 0:
            raise TeamServerError(f"{directory} is not reachable by the OS user {POSTGRES_OS_USER!r}: a parent "
                                  "directory is private (mode 0700?); chmod o+x it or choose another directory")
    if not (pg.data_dir / "PG_VERSION").is_file():
        # initdb reads the superuser's password from this file (it runs as its owner); it stays, 0600
        write_secret(pg.superuser_password_file, secrets.token_urlsafe(24), owner)
        _run(_as_postgres_user([str(bin_dir / "initdb"), "-D", str(pg.data_dir), "-U", SUPERUSER, "-E", "UTF8",
                                "--locale=C", f"--auth-local={AUTH_METHOD}", f"--auth-host={AUTH_METHOD}",
                                f"--pwfile={pg.superuser_password_file}"]), "initdb")
    hba = pg.data_dir / "pg_hba.conf"
    trusting = _hba_trust_lines(hba)
    if not trusting and not pg.superuser_password_file.is_file():
        raise TeamServerError(f"{pg.superuser_password_file} is missing, so the cluster in {pg.data_dir} cannot be "
                              "managed; restore it, or move that directory away to start a new, empty cluster")
    # no secret in these options: they show in ps
    options = " ".join([f"-c listen_addresses=127.0.0.1 -p {port} -k {shlex.quote(str(pg.socket_dir))}",
                        "-c unix_socket_permissions=0700", f"-c password_encryption={AUTH_METHOD}"])
    _run(_as_postgres_user([str(bin_dir / "pg_ctl"), "-D", str(pg.data_dir), "-l", str(pg.log_file), "-o", options,
                            "-w", "-t", "60", "start"]), "pg_ctl start", pg.log_file)
    try:
        if trusting:
            _require_passwords(pg, hba, trusting, owner)
        _ensure_role_and_database(pg)
    except BaseException as exc:  # Ctrl-C included: leave no server running
        pg.stop()
        if not isinstance(exc, Exception) or isinstance(exc, TeamServerError):
            raise
        raise TeamServerError(f"creating role {user!r} and database {database!r} failed: "
                              f"{' '.join(str(exc).split())}") from exc
    return pg


def _require_passwords(pg: Postgres, hba: Path, trusting: list[int], owner: tuple[int, int] | None) -> None:
    """Upgrade a cluster made by older versions (local connections trusted): give the superuser a password
    (through the socket, private to its owner since this start) and rewrite pg_hba.conf to scram-sha-256."""
    import psycopg2
    from psycopg2 import sql
    from psycopg2.extensions import encrypt_password

    superuser_password = secrets.token_urlsafe(24)
    try:
        connection = psycopg2.connect(host=str(pg.socket_dir), port=pg.port, user=SUPERUSER, dbname="postgres")
    except psycopg2.Error as exc:
        raise TeamServerError(f"{hba} trusts local connections (made by an older version) and switching it to "
                              f"passwords failed: {' '.join(str(exc).split())}; move {pg.data_dir} away to start "
                              "a new cluster") from None
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            verifier = encrypt_password(superuser_password, SUPERUSER, connection, AUTH_METHOD)
            cursor.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(SUPERUSER),
                                                                       sql.Literal(verifier)))
            write_secret(pg.superuser_password_file, superuser_password, owner)
            lines = hba.read_text().splitlines()
            for index in trusting:
                lines[index] = re.sub(r"trust(\s*(#.*)?)$", rf"{AUTH_METHOD}\1", lines[index], flags=re.IGNORECASE)
            write_secret(hba, "\n".join(lines), owner)
            cursor.execute("SELECT pg_reload_conf()")
    finally:
        connection.close()
    print(f"note: {hba} trusted local connections (made by an older version of pipeline.commands.team_server); "
          f"it now asks for passwords ({AUTH_METHOD})",
          file=sys.stderr, flush=True)


def _ensure_role_and_database(pg: Postgres) -> None:
    """Create the login role and its database unless they exist, and set the role's password.

    The password goes to the server already hashed (a SCRAM verifier made here by libpq), so it cannot
    show in the server's log even if a statement is logged."""
    import psycopg2
    from psycopg2 import sql
    from psycopg2.extensions import encrypt_password

    superuser_password = read_secret(pg.superuser_password_file, "superuser password file")
    connection = psycopg2.connect(host="127.0.0.1", port=pg.port, user=SUPERUSER, password=superuser_password,
                                  dbname="postgres")
    try:
        connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        with connection.cursor() as cursor:
            verifier = encrypt_password(pg.password, pg.user, connection, AUTH_METHOD)
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (pg.user,))
            verb = "ALTER" if cursor.fetchone() else "CREATE"
            cursor.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(pg.user),
                                                                             sql.Literal(verifier)))
            for database in (pg.database, SWEEP_DATABASE):
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                if cursor.fetchone() is None:
                    cursor.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database),
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
                      host: str = "127.0.0.1", password: str | None = None,
                      allowed_hosts: str | None = None) -> TeamServer:
    """PostgreSQL in ``directory/postgres`` and ``mlflow server`` with artifacts in ``directory/artifacts``.

    ``password`` is the database role's; without it the one kept in ``directory/mlflow-db-password`` is
    used, or a new random one is made and kept there (see :func:`role_password`)."""
    directory = Path(directory).resolve()
    if port:
        check_port_free(port, host, what="MLflow server")
    password = role_password(directory, password)
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
                host: str = "127.0.0.1", password: str | None = None) -> Iterator[TeamServer]:
    """:func:`start_team_server` as a context manager that stops both servers on exit, even on error."""
    server = start_team_server(directory, port, pg_port, host, password)
    try:
        yield server
    finally:
        server.stop()


def _interrupt(signum: int, frame: Any) -> NoReturn:
    raise KeyboardInterrupt


def given_password(password_file: Path | None, environ: dict[str, str] | None = None) -> str | None:
    """The role's password from ``--password-file``, else ``$MLFLOW_TEAM_DB_PASSWORD`` (or the older
    ``$TEAM_SERVER_DB_PASSWORD``); None when neither is given."""
    environ = os.environ if environ is None else environ
    if password_file is not None:
        return read_secret(Path(password_file), tighten=False)  # the caller's own file: left as it is
    return environ.get(PASSWORD_ENV) or environ.get(OLD_PASSWORD_ENV) or None


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging()
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.commands.team_server", allow_abbrev=False,
        description="Run a local MLflow tracking server backed by PostgreSQL until Ctrl-C; then point the "
                    "pipeline at it with MLFLOW_TRACKING_URI=http://HOST:PORT dvc repro.")
    parser.add_argument("--dir", type=Path, required=True,
                        help="where the PostgreSQL cluster (postgres/), artifacts (artifacts/), logs and the "
                             f"database password ({PASSWORD_FILE}) live; reused when it exists (as root: somewhere "
                             "the postgres user can reach, e.g. /var/tmp/mlflow-team)")
    parser.add_argument("--host", default="127.0.0.1", help="interface MLflow listens on (default 127.0.0.1; "
                        "0.0.0.0 for the whole network)")
    parser.add_argument("--port", type=int, default=5000, help="MLflow port (default 5000)")
    parser.add_argument("--pg-port", type=int, default=None, help="PostgreSQL port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--password-file", type=Path, default=None,
                        help="file holding the password of the database role 'mlflow' on its first line "
                             f"(default ${PASSWORD_ENV}, else the one kept in DIR/{PASSWORD_FILE}, else a new "
                             "random one); it is set on every start and kept in that file (mode 0600)")
    # a password on the command line shows in ps: refused with a pointer to the ways that do not
    parser.add_argument("--password", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--allowed-hosts", default=None,
                        help="passed to mlflow server --allowed-hosts, e.g. 'mlflow.example.com,10.0.0.5:5000'")
    args = parser.parse_args(argv)
    if args.password is not None:
        print(f"error: --password is not accepted (a command line shows in ps); put the password in ${PASSWORD_ENV} "
              "or in a file given with --password-file PATH", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)  # before starting: a stop request while starting cleans up too
    try:
        server = start_team_server(args.dir, args.port, args.pg_port, args.host, given_password(args.password_file),
                                   args.allowed_hosts)
    except TeamServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    directory = args.dir.resolve()
    try:
        print(f"MLflow tracking server on {server.url} (backend store {server.postgres.redacted_url}, password in "
              f"{directory / PASSWORD_FILE}; artifacts {directory / 'artifacts'}); Ctrl-C stops both.\n"
              f"  MLFLOW_TRACKING_URI={server.url} dvc repro\n"
              f"Sweep workers keep their study in {redact(server.postgres.sweep_url)} (the same password):\n"
              f"  PIPELINE_SWEEP_STORAGE=<that URL> python -m pipeline.commands.sweep worker <name>", flush=True)
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
