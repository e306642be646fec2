"""The agent's backends over the webhook's HTTP API (README, "Webhook routes the agent uses").

The agent authenticates with its node token; the job's child uses only the job
token the webhook hands out when the agent claims the job (the job's run, bundle
and checkpoint; it dies when the job ends), so epochs land in the owner's run
exactly like the Tracker's own and the node token never reaches job code.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import requests

from fitwire.agent.backends import Claim, JobState
from fitwire.client_api.http import Client, error_of
from fitwire.contract import EpochEnd, FitwireError, Job, JobSpec, NodeTelemetry, encode
from fitwire.contract.errors import ServerUnreachable

log = logging.getLogger(__name__)

API = "/api/v1"
TIMEOUT_S = (3.0, 15.0)


class WebhookError(FitwireError):
    """The webhook refused a request (the message is its sentence) or could not be reached."""

    def __init__(self, message: str, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class _Client(Client):
    """fitwire's one HTTP client, with the node's (or a job's) token, keeping its connection."""

    def __init__(self, url: str, token: str) -> None:
        # Job states must arrive: fitwire's retry policy rides out a webhook restart, POSTs
        # included (a job state is keyed by job and delivery, so a repeat changes nothing).
        super().__init__(url, token, timeout=TIMEOUT_S, retry_posts=True, keep_alive=True)

    @property
    def url(self) -> str:
        return self.server

    def send(self, method: str, path: str, *, json: Any = None, data: bytes | None = None,
             token: str | None = None, ok_missing: bool = False) -> requests.Response | None:
        """The answer; None for a 404 when ``ok_missing``. Raises WebhookError with the server's sentence."""
        try:
            resp = self.request(method, path, json=json, data=data, token=token)
        except ServerUnreachable as exc:
            raise WebhookError(f"the webhook at {self.server} is unreachable ({exc})") from None
        if resp.status_code == 404 and ok_missing:
            return None
        if not resp.ok:
            error = error_of(resp)
            raise WebhookError(error.message, error.status, error.code)
        return resp


class HttpJobEvents(_Client):
    """:class:`~fitwire.agent.backends.JobEvents` through ``/api/v1/jobs`` and ``/api/v1/events``."""

    def job_state(self, job: Job, state: JobState, *, reason: str | None = None,
                  node_id: str | None = None) -> None:
        self.send("PUT", f"{API}/jobs/{quote(job.job_id)}/state",
                  json={"state": state, "reason": reason, "node_id": node_id})

    def status(self, job_id: str) -> tuple[JobState, str | None] | None:
        resp = self.send("GET", f"{API}/jobs/{quote(job_id)}", ok_missing=True)
        if resp is None:
            return None
        body = resp.json()
        return body["state"], body.get("reason")

    def claim(self, job: Job, node_id: str, delivery: int = 0) -> Claim | None:
        try:
            resp = self.send("POST", f"{API}/jobs/{quote(job.job_id)}/claim", json={"delivery": delivery})
        except WebhookError as exc:
            if exc.code in ("INVALID_STATE", "RESOURCE_DOES_NOT_EXIST", "PERMISSION_DENIED"):
                log.warning("not running job %s: %s", job.job_id, exc)
                return None
            raise
        assert resp is not None
        body = resp.json()
        stored = body["job"]
        # the store's job, not the message's: a forged or altered message runs nothing of its own
        trusted = Job(job_id=stored["job_id"], pool=stored["pool"], owner=stored["owner"], run_id=stored["run_id"],
                      spec=JobSpec.model_validate(stored["spec"]))
        return Claim(trusted, body.get("token"), body.get("amqp_url"))

    def epoch_end(self, job: Job, epoch: int, logs: dict[str, Any]) -> None:
        event = EpochEnd(run_id=job.run_id, model_key=job.spec.model_key, owner=job.owner, epoch=epoch,
                         logs=logs)
        try:
            self.send("POST", f"{API}/events", data=encode(event))
        except WebhookError as exc:
            # the Tracker's outbox carries the same epoch; losing this copy only weakens the guarantee
            log.warning("could not store epoch %d of run %s: %s", epoch, job.run_id, exc)

    def hello(self, telemetry: NodeTelemetry) -> dict[str, Any]:
        """Introduce the agent; raises WebhookError with the server's sentence when it is refused."""
        resp = self.send("POST", f"{API}/nodes/hello", data=encode(telemetry))
        assert resp is not None
        return dict(resp.json())

    def telemetry(self, telemetry: NodeTelemetry) -> None:
        self.send("POST", f"{API}/nodes/telemetry", data=encode(telemetry))


class HttpArtifacts(_Client):
    """:class:`~fitwire.agent.backends.ArtifactStore` through ``/api/v1/artifacts/<key>``."""

    def put(self, key: str, data: bytes) -> None:
        self.send("PUT", f"{API}/artifacts/{quote(key)}", data=data)

    def get(self, key: str) -> bytes | None:
        resp = self.send("GET", f"{API}/artifacts/{quote(key)}", ok_missing=True)
        return None if resp is None else resp.content
