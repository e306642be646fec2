"""What separates a job's code from the agent that runs it (issue 11).

Where the agent runs as root and reports to a webhook, the job's child runs as an
unprivileged user (``FITWIRE_JOB_USER``, default ``nobody``): the runner reads its
ticket as root, imports Keras, then drops to that user (no supplementary groups) before
it loads the job's code, in a working directory of its own under
``<tmp>/fitwire-jobs/`` with ``HOME`` there. The child's environment never carries the
node token (nor ``FITWIRE_TOKEN``/``FITWIRE_AMQP_URL``), and the ticket (root's, 0600,
holding only the job's own token) is removed when the job ends.

What this is not: a container. The job shares the machine's kernel, network, /tmp and
every file that ``nobody`` may read; two jobs on one machine run as the same user. A
local-mode agent (no webhook) and an agent that is not root run jobs as themselves,
because the child then works on the agent's own files. docs/agents.md says the same.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import sys
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from fitwire.contract import FitwireError

JOBS_DIR = "fitwire-jobs"
SCRUBBED = ("FITWIRE_TOKEN", "FITWIRE_AMQP_URL")
"""Variables that may hold the agent's credentials (node token, its broker login)."""


class IsolationError(FitwireError):
    """The job user or the job directories cannot be set up safely."""


@dataclass(frozen=True)
class JobUser:
    name: str
    uid: int
    gid: int


def job_user(name: str) -> JobUser | None:
    """The unprivileged user jobs run as, or None when this agent is not root (nothing to drop)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise IsolationError(f"FITWIRE_JOB_USER={name!r}: no such user on this machine; create it "
                             "(useradd --system --no-create-home fitwire-job) or name another one.") from None
    if entry.pw_uid == 0:
        raise IsolationError(f"FITWIRE_JOB_USER={name!r} is root: job code must not run as root.")
    return JobUser(name, entry.pw_uid, entry.pw_gid)


def _jobs_root() -> Path:
    """``<tmp>/fitwire-jobs``: root's, 0711 (others may enter their own directory, not list)."""
    root = Path(tempfile.gettempdir()) / JOBS_DIR
    try:
        root.mkdir(mode=0o711)
    except FileExistsError:
        pass
    info = os.lstat(root)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0:  # someone else made it first: not ours to trust
        raise IsolationError(f"{root} exists but is not a directory owned by root; remove it.")
    os.chmod(root, 0o711)
    return root


DATASETS_DIR = "fitwire-datasets"


def open_to_all(path: Path) -> bool:
    """Whether any user may enter ``path`` and every folder above it (what a job user needs to read
    a file there that is not theirs)."""
    path = path.resolve()
    for folder in (path, *path.parents):
        try:
            if not os.stat(folder).st_mode & stat.S_IXOTH:
                return False
        except FileNotFoundError:
            continue  # made later, by the agent, 0755
    return True


def dataset_cache_dir(wanted: Path, user: JobUser | None) -> Path:
    """Where the agent keeps datasets: ``wanted``, unless jobs run as another user who could not reach
    it (a data dir under root's home); then ``<tmp>/fitwire-datasets``, root's, 0755."""
    if user is None or open_to_all(wanted):
        return wanted
    root = Path(tempfile.gettempdir()) / DATASETS_DIR
    root.mkdir(mode=0o755, exist_ok=True)
    info = os.lstat(root)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0:
        raise IsolationError(f"{root} exists but is not a directory owned by root; remove it.")
    return root


def job_workdir(base: Path, job_id: str, user: JobUser | None) -> Path:
    """A fresh working directory for one job: under ``base``, or, for an isolated job, the job
    user's own (0700) under ``<tmp>/fitwire-jobs`` (``base`` may sit where that user cannot go)."""
    name = f"{job_id}-{uuid.uuid4().hex[:6]}"
    if user is None:
        workdir = base / name
        workdir.mkdir(parents=True)
        return workdir
    workdir = _jobs_root() / name
    workdir.mkdir(mode=0o700)
    os.chown(workdir, user.uid, user.gid)
    return workdir


def job_environment(environ: Mapping[str, str], workdir: Path, secrets: Iterable[str], *,
                    isolated: bool) -> dict[str, str]:
    """The child's environment: the agent's, less anything carrying the agent's credentials."""
    hidden = [s for s in secrets if s]
    env = {k: v for k, v in environ.items()
           if k not in SCRUBBED and not any(secret in v for secret in hidden)}
    if isolated:  # the agent's home and data dir are root's; the job keeps its files in its own dir
        env.update(HOME=str(workdir), FITWIRE_DATA_DIR=str(workdir / ".fitwire"),
                   FITWIRE_CONFIG_DIR=str(workdir / ".config"), KERAS_HOME=str(workdir / ".keras"))
    return env


def remove_ticket(ticket: Path, workdir: Path, *, isolated: bool) -> None:
    """The job has ended: its ticket goes (and an isolated job's whole directory, which is in /tmp)."""
    ticket.unlink(missing_ok=True)
    if isolated:
        shutil.rmtree(workdir, ignore_errors=True)


def unreadable_interpreter() -> Path | None:
    """A directory on the way to this Python's files that other users cannot enter, if any.

    Job code then imports only what the runner preloaded (``runner.PRELOADED``): install fitwire
    in an environment every user may read (a venv under /opt, not under /root)."""
    for prefix in {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}:
        for directory in (prefix, *prefix.parents):
            if not os.stat(directory).st_mode & stat.S_IXOTH:
                return directory
    return None


def drop_privileges(uid: int, gid: int) -> None:
    """Become the job user for good (the runner, after reading its ticket and importing Keras)."""
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    if os.getuid() == 0 or os.geteuid() == 0:
        raise IsolationError("could not drop root privileges")
