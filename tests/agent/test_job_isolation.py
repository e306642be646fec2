"""What job code sees (issue 11): run by a root agent, it is not root, and no node token reaches it.

A real agent process (root here) takes a real job through the webhook; the job's own code
reports what it can see by failing with it, so the stored reason is the evidence.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest

from fitwire.agent.isolation import JOBS_DIR

from .hub import Hub

PROBE = '''
import os, pathlib

def build():
    token = {node_token!r}
    leaks = sorted(k for k, v in os.environ.items() if token in v)
    try:
        ticket = pathlib.Path("ticket.json").read_text()
        seen = "node token" if token in ticket else "readable"
    except OSError:
        seen = "unreadable"
    raise RuntimeError(f"uid={{os.getuid()}} cwd={{os.getcwd()}} env_leaks={{leaks}} ticket={{seen}}")
'''


@pytest.mark.skipif(os.geteuid() != 0, reason="isolation applies where the agent runs as root")
def test_a_root_agent_runs_job_code_unprivileged_without_the_node_token(hub: Hub) -> None:
    node_token = hub.node_token("root-box")
    agent = hub.start_agent(token=node_token)
    r = hub.api("POST", "/api/v1/jobs", json={"pool": hub.pool, "spec": {"model_key": hub.model_key},
                                               "bundle_source": PROBE.format(node_token=node_token)})
    assert r.status_code == 201, r.text
    job = hub.wait_job(r.json()["job_id"], "failed", "succeeded")
    reason = str(job["reason"])
    found = re.search(r"uid=(\d+) cwd=(\S+) env_leaks=(\[.*?\]) ticket=(\S+)", reason)
    assert found, f"{reason}\n{agent.log()[-3000:]}"
    uid, cwd, leaks, ticket = found.groups()
    assert int(uid) != 0 and int(uid) == __import__("pwd").getpwnam("nobody").pw_uid
    assert Path(cwd).parent == Path(tempfile.gettempdir()) / JOBS_DIR  # its own directory
    assert leaks == "[]"  # neither FITWIRE_TOKEN nor anything else carries the node token
    assert ticket == "unreadable"  # root's ticket; and it never holds the node token anyway
    assert "as nobody" in agent.log()
    assert not list((Path(tempfile.gettempdir()) / JOBS_DIR).glob(f"{job['job_id']}-*"))  # removed at the end
