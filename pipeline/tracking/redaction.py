"""What the pipeline shows and writes carries no secret and no path of the machine that wrote it.

A tracking URI may hold a password (``http://user:secret@host:5000``,
``postgresql+psycopg2://mlflow:pw@db:5432/mlflow``) or a token in its query string
(``?token=...``). :func:`redact_uri` hides them; :func:`scrub` does the same to every URI inside
a free text (the messages of requests, urllib3 and MLflow quote the full URL) and to the secrets
the environment gives MLflow. :func:`shown_uri` is the form every message, file and tag uses: redacted,
and a local store of this project named relative to it (``sqlite:///mlflow.db``).
:func:`portable_path` names a file relative to the project when it lies inside it.

The real URI is only ever read from the environment or ``params.yaml`` at the time of use
(:meth:`pipeline.config.Params.tracking_uri`); what is stored is only for people to read.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pipeline.config.paths import PROJECT_ROOT

MASK = "***"
#: query parameters whose values are secrets (matched anywhere in the lower-cased name)
SECRET_KEYS = re.compile(r"token|passw|pwd|secret|key|sig|credential|auth|session")
#: a URI in a text: a scheme, ``://``, and everything up to whitespace, a quote or a bracket
URI_IN_TEXT = re.compile(r"""[A-Za-z][A-Za-z0-9+.\-]*://[^\s'"<>()\[\]{}]+""")
#: environment variables that hold MLflow credentials
SECRET_ENV = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
#: secrets shorter than this are not searched for in free text (they would garble it)
MIN_SECRET = 4


def redact_uri(uri: str) -> str:
    """``uri`` with the password of its user info and the values of secret query parameters
    replaced by ``***``: ``http://user:pw@host:5000/x?token=t&a=1`` -> ``http://user:***@host:5000/x?token=***&a=1``.

    Anything that is not a ``scheme://`` URI is returned unchanged, as is a URI without secrets.
    """
    match = re.match(r"([A-Za-z][A-Za-z0-9+.\-]*://)([^/?#]*)(.*)", uri, re.DOTALL)
    if not match:
        return uri
    scheme, authority, rest = match.groups()
    if "@" in authority:
        userinfo, _, host = authority.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        authority = f"{user}:{MASK}@{host}" if colon else authority
    return scheme + authority + _redact_query(rest)


def _redact_query(rest: str) -> str:
    """The path, query and fragment ``rest`` with the values of secret query parameters masked."""
    path, question, query = rest.partition("?")
    if not question:
        return rest
    query, hash_, fragment = query.partition("#")
    pairs = []
    for pair in re.split(r"([&;])", query):
        name, equals, value = pair.partition("=")
        if equals and value and SECRET_KEYS.search(name.lower()):
            pair = f"{name}={MASK}"
        pairs.append(pair)
    return f"{path}?{''.join(pairs)}{hash_}{fragment}"


def known_secrets() -> list[str]:
    """The secrets the current environment gives MLflow: the password in ``MLFLOW_TRACKING_URI`` and
    ``MLFLOW_TRACKING_PASSWORD`` / ``MLFLOW_TRACKING_TOKEN``."""
    secrets = [os.environ[name] for name in SECRET_ENV if os.environ.get(name)]
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    match = re.match(r"[A-Za-z][A-Za-z0-9+.\-]*://([^/?#]*)@", uri)
    if match and ":" in match.group(1):
        password = match.group(1).partition(":")[2]
        secrets.append(password)
        from urllib.parse import unquote

        secrets.append(unquote(password))
    return sorted({s for s in secrets if len(s) >= MIN_SECRET}, key=len, reverse=True)


def scrub(text: str) -> str:
    """``text`` with every URI in it redacted (:func:`redact_uri`) and the environment's MLflow
    secrets masked wherever they occur (exception messages quote them in many shapes)."""
    text = URI_IN_TEXT.sub(lambda m: redact_uri(m.group(0)), str(text))
    for secret in known_secrets():
        text = text.replace(secret, MASK)
    return text


def keep_mlflow_quiet(uri: str) -> None:
    """When ``uri`` carries a secret, stop MLflow from printing it: MLflow writes a "View run ... at:
    <tracking URI>/#/..." link to stdout as each run ends, credentials included."""
    if redact_uri(uri) != uri:
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"


def fail_fast_commands() -> None:
    """MLflow settings of a command that reads a store (compare, promote, summary), unless the user set them:
    a remote store that does not answer fails at once instead of retrying for minutes, and artifact
    downloads show no progress bar each."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def shown_uri(uri: str, root: Path = PROJECT_ROOT) -> str:
    """A tracking URI as messages, files and tags show it: redacted, and a sqlite database inside the
    project relative to it (``sqlite:////home/me/project/mlflow.db`` -> ``sqlite:///mlflow.db``)."""
    prefix = "sqlite:///"
    if uri.startswith(prefix + "/"):
        path, question, query = uri[len(prefix):].partition("?")
        uri = prefix + portable_path(path, root) + question + query
    return redact_uri(uri)


def portable_path(path: str | os.PathLike[str], root: Path = PROJECT_ROOT) -> str:
    """``path`` relative to the project ``root`` when it lies inside it, else as given."""
    candidate = Path(path)
    if not candidate.is_absolute():
        return str(path)
    for base in (root, root.resolve()):
        for target in (candidate, candidate.resolve()):
            if target.is_relative_to(base):
                return target.relative_to(base).as_posix() or "."
    return str(path)


def portable_text(text: str, root: Path = PROJECT_ROOT) -> str:
    """``text`` with the project's absolute directory removed from the paths in it."""
    for base in {str(root.resolve()), str(root)}:
        text = text.replace(base + os.sep, "")
    return text
