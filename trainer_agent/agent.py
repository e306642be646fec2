"""The agent daemon: takes jobs from its pools' queues and runs each in a child process.

One thread owns the broker connection (the adapter's :class:`Consumer`: pika's
BlockingConnection is not thread-safe) and loops: service the connection
(heartbeats, deliveries), watch the child, publish telemetry. The job message
is acked only when the job has ended, so a job held by an agent that dies goes back to the queue and another
agent resumes it from its last checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika

from fitwire.agent.backends import TERMINAL_STATES, Claim, JobEvents, open_backends
from fitwire.agent.deadletters import handle_dead_letter
from fitwire.agent.isolation import (
    JobUser,
    dataset_cache_dir,
    job_environment,
    job_user,
    job_workdir,
    remove_ticket,
    unreadable_interpreter,
)
from fitwire.agent.predictor import Predictor
from fitwire.agent.telemetry import Collector, GpuProbe, default_probe
from fitwire.broker.adapter import Broker, Consumer, Delivery, Subscription
from fitwire.broker.jobs import HANDBACKS_HEADER, MISFIT_LIMIT, MISFITS_HEADER, publish_job
from fitwire.broker.topology import (
    JOBS_DEAD_WATCH,
    TELEMETRY,
    agent_topology,
    job_queue,
    telemetry_key,
)
from fitwire.contract import (
    BrokerError,
    BrokerUnavailable,
    DecodeError,
    FitwireError,
    GpuInfo,
    Job,
    NodeTelemetry,
    decode,
    encode,
    placement,
)
from fitwire.settings import Settings

log = logging.getLogger(__name__)

TICK_S = 0.5
"""How long one loop turn services the connection: the child's end is noticed this fast."""
GPU_POLL_S = 1.0


@dataclass
class AgentConfig:
    amqp_url: str
    pools: tuple[str, ...] = ("default",)
    backends: dict[str, Any] = field(default_factory=dict)
    """Where jobs are reported and artifacts kept (see ``backends.open_backends``); shared with the child."""
    node_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    telemetry_interval: float = 5.0
    placement_pause: float = 2.0
    """After handing back a job it could not fit, the agent stops bidding this long."""
    tracker: bool = False
    """Wrap fits in the Tracker (needs the webhook URL and a token)."""
    webhook_url: str | None = None
    token: str | None = None
    work_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "fitwire-agent")
    watch_dead_letters: bool = True
    log_level: str = "WARNING"
    job_user: str = "nobody"
    """Where the agent runs as root (and reports to a webhook), job code runs as this user."""
    dataset_cache: Path | None = None
    """Where datasets that jobs train on are kept (``dataset_cache.DatasetCache``); None: ``work_dir/datasets``."""
    dataset_cache_bytes: int = 20 * 1024**3


@dataclass
class _Running:
    job: Job
    delivery: Delivery
    """The job's message, unacked while the job runs: a crashed agent's job goes back to the queue."""
    process: subprocess.Popen[bytes]
    result_path: Path
    started: float
    ticket_path: Path
    workdir: Path
    preempt_sent: bool = False


class Agent:
    """One trainer agent. ``run()`` blocks until :meth:`request_stop` and the current job's checkpoint."""

    def __init__(self, config: AgentConfig, *, probe: GpuProbe | None = None,
                 events: JobEvents | None = None) -> None:
        self.config = config
        self.probe = probe or default_probe()
        self.events = events or open_backends(config.backends)[0]
        self.collector = Collector(config.node_id, config.pools, self.probe)
        self._stopping = False
        self._hurry = False
        self._inbox: list[Delivery] = []
        self._running: _Running | None = None
        self._consumer: Consumer | None = None
        self._jobs: Subscription | None = None
        self._priority = 0
        self._bid_after = 0.0
        self._gpus: list[GpuInfo] = []
        self._next_gpu_poll = 0.0
        self._next_telemetry = 0.0
        self.jobs_done = 0
        self._reporter: _TelemetryReporter | None = None
        # local mode: the child works on the agent's own files, so it runs as the agent's user
        self._job_user: JobUser | None = (
            job_user(config.job_user) if config.backends.get("kind") == "http" else None)
        self._dataset_cache = dataset_cache_dir(config.dataset_cache or config.work_dir / "datasets", self._job_user)
        closed = unreadable_interpreter() if self._job_user is not None else None
        if closed is not None:
            log.warning("job code runs as %s, who cannot enter %s: jobs can import only what the runner "
                        "preloads (Keras, TensorFlow, NumPy); install fitwire where every user may read it",
                        self._job_user.name if self._job_user else "", closed)

    # --- control -------------------------------------------------------------------

    def request_stop(self, *_: object) -> None:
        """SIGTERM: stop taking jobs, checkpoint the current one, hand it back. Twice: at once."""
        if self._stopping:
            self._hurry = True
        self._stopping = True

    def run(self) -> None:
        """Serve jobs until stopped, reconnecting with backoff when the broker goes away.

        Raises:
            WebhookError: the webhook refused this agent (wrong token, unaccepted wire-contract version).
        """
        self.config.work_dir.mkdir(parents=True, exist_ok=True)
        hello = getattr(self.events, "hello", None)
        if hello is not None:  # the webhook checks the token and the wire-contract version first
            answer = hello(self.collector.snapshot())
            # the node token names the node: its id is the server's, not a local guess
            self.config.node_id = self.collector.node_id = answer["node"]["node_id"]
            if answer.get("amqp_url"):  # the webhook is the truth: our own login `node.<id>` on its broker
                self.config.amqp_url = answer["amqp_url"]
            self._reporter = _TelemetryReporter(self.events.telemetry)  # type: ignore[attr-defined]
        predictor = self._start_predictor()
        try:
            self._serve_until_stopped()
        finally:
            if predictor is not None:
                predictor.stop()

    def _start_predictor(self) -> Predictor | None:
        """Serve predictions of the agent's pools on their own thread; only with a webhook to read models from."""
        backends = self.config.backends
        if backends.get("kind") != "http":
            return None  # local mode: no trained models are served from a local journal
        from fitwire.agent.http_backends import HttpArtifacts

        predictor = Predictor(self.config.amqp_url, self.config.pools,
                              HttpArtifacts(backends["url"], backends["token"]), node_id=self.config.node_id,
                              models=Settings.from_env().predict_models, work_dir=self.config.work_dir / "predict")
        predictor.start()
        return predictor

    def _serve_until_stopped(self) -> None:
        """Connect (again after a loss, with backoff) and serve; a stopping agent does not wait for a broker."""
        self._jobs = Subscription([job_queue(pool).name for pool in self.config.pools], self._on_job,
                                  prefetch=1,  # per consumer: a busy agent is offered nothing
                                  start=False)  # it bids in _turn, when it has room
        dead = ([Subscription([JOBS_DEAD_WATCH.name], self._on_dead_letter, prefetch=10)]
                if self.config.watch_dead_letters else [])
        # a fresh broker has nothing yet: declare what this agent uses before using it
        self._consumer = Consumer(Broker(self.config.amqp_url, name=f"fitwire-agent-{self.config.node_id}",
                                         confirm=True),
                                  self._jobs, *dead, declares=agent_topology(self.config.pools))
        lost: BrokerError | None = None
        try:
            while True:
                try:
                    self._consumer.reopen(at_once=lost is None, lost=lost, on_failure=self._broker_failed)
                    self._serve(self._consumer)
                    return
                except BrokerError as exc:
                    # the broker will redeliver our job elsewhere; running on would train it twice
                    self._kill_child("lost the broker connection")
                    self._inbox.clear()  # their channel is gone: the broker delivers them again
                    if self._stopping:
                        return
                    lost = exc
        finally:
            self._consumer.close()

    def _broker_failed(self, exc: Exception, delay: float) -> None:
        if self._stopping:
            raise exc  # nothing to hand back: stop now rather than wait for the broker
        if isinstance(exc, BrokerUnavailable):
            log.warning("broker connection lost (%s); reconnecting in %.0fs", exc, delay)
        else:  # refused or misconfigured (a queue declared with other arguments, no permission)
            log.error("the broker refused this agent (%s); retrying in %.0fs", exc, delay)

    # --- the loop ------------------------------------------------------------------

    def _serve(self, consumer: Consumer) -> None:
        while not (self._stopping and self._running is None) and not self._hurry:
            consumer.poll(TICK_S)
            self._turn()
        if self._hurry:
            self._kill_child("agent stopped at once")
        consumer.close()

    def _turn(self) -> None:
        now = time.monotonic()
        if now >= self._next_gpu_poll:
            self._next_gpu_poll = now + GPU_POLL_S
            gpus = self.probe.gpus()
            changed = placement.significant_change(self._gpus, gpus)
            self._gpus = gpus
            if changed:
                self._next_telemetry = 0.0  # WebML's rule: report a big memory change at once
                if self._bidding and self._running is None:
                    self._stop_consuming()  # re-bid with the new free memory below
        while self._inbox:
            self._take(self._inbox.pop(0))
        if self._running is not None:
            if self._bidding:
                self._stop_consuming()
            self._watch_child()
        if self._stopping:
            if self._bidding:
                self._stop_consuming()
            if self._running is not None and not self._running.preempt_sent:
                self._running.preempt_sent = True
                self._running.process.terminate()  # the runner checkpoints at epoch end and exits
        elif self._running is None and not self._bidding and now >= self._bid_after:
            self._start_consuming()
        if now >= self._next_telemetry:
            self._next_telemetry = now + self.config.telemetry_interval
            self._publish_telemetry()

    # --- consuming and bidding -------------------------------------------------------

    @property
    def _bidding(self) -> bool:
        return self._jobs is not None and self._jobs.consuming

    def _start_consuming(self) -> None:
        assert self._jobs is not None
        self._priority = placement.consumer_priority(self._gpus)
        self._jobs.start(arguments={"x-priority": self._priority})
        log.debug("consuming %s with priority %d", self._jobs.names, self._priority)

    def _stop_consuming(self) -> None:
        assert self._jobs is not None
        self._jobs.stop()

    def _on_job(self, delivery: Delivery) -> None:
        # called from the consumer's poll; the work happens in _turn, outside pika's dispatch
        self._inbox.append(delivery)

    def _on_dead_letter(self, delivery: Delivery) -> None:
        try:
            job_id = decode(delivery.body, Job).job_id
            previous = (self.events.status(job_id) or (None, None))[1]
        except DecodeError:
            previous = None
        try:
            handle_dead_letter(self.events, delivery.body, delivery.headers, previous)
        except Exception:  # the store is down: leave the notification for later
            log.exception("could not record a dead job; leaving it in %s", JOBS_DEAD_WATCH.name)
            delivery.nack(requeue=True)
            return
        delivery.ack()  # only the notification: jobs.dead keeps the letter itself

    # --- one job ---------------------------------------------------------------------

    def _take(self, d: Delivery) -> None:
        try:
            job = decode(d.body, Job)
        except DecodeError as exc:
            log.error("rejecting an undecodable job to the dead-letter queue: %s", exc)
            d.reject(requeue=False)
            return
        if self._running is not None or self._stopping:
            self._hand_back(d, job, "agent busy or stopping")
            return
        known = self.events.status(job.job_id)
        if known is not None and known[0] in TERMINAL_STATES:
            log.info("job %s is already %s; dropping its message", job.job_id, known[0])
            d.ack()
            return
        gpus = self.probe.gpus()
        chosen = placement.choose_gpus(job.spec, gpus)
        if chosen is None:
            shortfall = placement.capacity_shortfall(job.spec, gpus)
            if shortfall is None:
                self._hand_back(d, job, "no GPU with enough free memory here now", misfits=0)
            else:
                self._misfit(d, job, shortfall)
            self._bid_after = time.monotonic() + self.config.placement_pause
            return
        # a pointer, checked: the store says whether this job exists, is queued and is ours to run,
        # and what it is (spec, run, owner); the message's own copy is never run
        claim = self.events.claim(job, self.config.node_id, int(d.headers.get("x-delivery-count", 0) or 0))
        if claim is None:  # unknown to the store, ended, or claimed for this delivery already
            d.ack()
            return
        self._running = self._spawn(claim, d, chosen)
        self._next_telemetry = 0.0

    def _spawn(self, claim: Claim, d: Delivery, gpus: list[int]) -> _Running:
        job = claim.job
        workdir = job_workdir(self.config.work_dir, job.job_id, self._job_user)
        backends = dict(self.config.backends)
        if backends.get("kind") == "http":
            backends["token"] = claim.token  # the job token: the node token never reaches job code
        ticket = {
            "job": json.loads(encode(job)), "agent_pid": os.getpid(), "backends": backends,
            "node_id": self.config.node_id, "amqp_url": claim.amqp_url or self.config.amqp_url,
            "webhook_url": self.config.webhook_url, "token": claim.token,
            "tracker": self.config.tracker, "log_level": self.config.log_level,
            "run_as": None if self._job_user is None else [self._job_user.uid, self._job_user.gid],
            "dataset_cache": str(self._dataset_cache),
            "dataset_cache_bytes": self.config.dataset_cache_bytes,
        }
        ticket_path = workdir / "ticket.json"
        # root's own 0600 file: the runner reads it before it drops to the job user
        fd = os.open(ticket_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(ticket))
        secrets = [t for t in (self.config.token, self.config.backends.get("token")) if t]
        env = job_environment(os.environ, workdir, secrets, isolated=self._job_user is not None)
        env.update(CUDA_VISIBLE_DEVICES=",".join(map(str, gpus)), TF_CPP_MIN_LOG_LEVEL="2")
        process = subprocess.Popen(
            [sys.executable, "-m", "fitwire.agent.runner", str(ticket_path), str(workdir / "result.json")],
            env=env, cwd=workdir,
            start_new_session=True,  # a Ctrl+C at the agent's terminal reaches the agent only
        )
        log.info("job %s (run %s) started in pid %d on GPUs %s%s", job.job_id, job.run_id, process.pid, gpus,
                 f" as {self._job_user.name}" if self._job_user else "")
        return _Running(job, d, process, workdir / "result.json", time.monotonic(), ticket_path, workdir)

    def _watch_child(self) -> None:
        run = self._running
        assert run is not None
        code = run.process.poll()
        if code is None:
            return
        self._running = None
        try:
            result = json.loads(run.result_path.read_text())
        except (OSError, ValueError):
            result = None
        remove_ticket(run.ticket_path, run.workdir, isolated=self._job_user is not None)
        if result is None:
            # a crash or a kill: not the job's own exception, so retry it elsewhere — the
            # broker counts the attempt and dead-letters a job that keeps doing this
            reason = f"runner process died ({_exit_text(code)})"
            self.events.job_state(run.job, "queued", reason=reason, node_id=self.config.node_id)
            # a reject, not a nack: from RabbitMQ 4.3 a nack no longer counts towards the delivery limit
            run.delivery.reject(requeue=True)
            log.warning("job %s: %s; returned to the queue", run.job.job_id, reason)
        elif result["outcome"] == "preempted":
            self.events.job_state(run.job, "queued", reason=result["reason"], node_id=self.config.node_id)
            self._hand_back(run.delivery, run.job, result["reason"])
        else:
            self.events.job_state(run.job, result["outcome"], reason=result["reason"],
                                  node_id=self.config.node_id)
            run.delivery.ack()
            self.jobs_done += 1
            log.info("job %s %s%s", run.job.job_id, result["outcome"],
                     f": {result['reason']}" if result["reason"] else "")
        self._next_telemetry = 0.0

    def _misfit(self, d: Delivery, job: Job, shortfall: str) -> None:
        """Hand back a job this node could never run; after MISFIT_LIMIT of those in a row, give it its verdict."""
        misfits = int(d.headers.get(MISFITS_HEADER, 0)) + 1
        if misfits >= MISFIT_LIMIT:
            reason = (f"no agent of pool {job.pool!r} could ever run it: {shortfall} "
                      f"(handed back {misfits} times by agents that could not)")
            try:
                self.events.job_state(job, "unschedulable", reason=reason, node_id=self.config.node_id)
            except FitwireError as exc:
                if getattr(exc, "code", None) == "INVALID_STATE":
                    # the webhook knows a registered node that can run it (busy now): the job waits for it
                    log.info("job %s stays queued: %s", job.job_id, exc)
                    misfits = 0
                else:  # the webhook is unreachable: the next agent offered the job tries again
                    log.warning("could not record job %s as unschedulable: %s", job.job_id, exc)
            else:
                d.ack()
                log.warning("job %s is unschedulable: %s", job.job_id, reason)
                return
        self._hand_back(d, job, f"this node could never run it: {shortfall}", misfits=misfits)

    def _hand_back(self, d: Delivery, job: Job, why: str, misfits: int | None = None) -> None:
        """Return a job unrun without spending a delivery attempt: republish (confirmed), then ack.

        A nack with requeue would count towards the quorum queue's delivery limit,
        and a job that merely waited for room must never end up dead for it.
        """
        if self._bidding:
            # cancel while we still hold the unacked original: with prefetch 1 nothing else is in
            # flight to us, so pika has nothing to nack (a nack would spend a delivery), and the
            # copy cannot come straight back to this agent in a hot loop
            self._stop_consuming()
        headers = dict(d.headers)
        headers[HANDBACKS_HEADER] = int(headers.get(HANDBACKS_HEADER, 0)) + 1
        if misfits is not None:  # None: handed back for a reason that says nothing about fitting
            headers[MISFITS_HEADER] = misfits
        headers.pop("x-delivery-count", None)
        assert self._consumer is not None
        self._consumer.run(lambda channel: publish_job(channel, job, headers))
        d.ack()
        log.info("handed job %s back to pool %s: %s", job.job_id, job.pool, why)

    def _kill_child(self, why: str) -> None:
        if self._running is not None:
            log.warning("killing job %s: %s", self._running.job.job_id, why)
            self._running.process.kill()
            self._running.process.wait()
            remove_ticket(self._running.ticket_path, self._running.workdir, isolated=self._job_user is not None)
            self._running = None

    def _publish_telemetry(self) -> None:
        job_id = self._running.job.job_id if self._running else None
        snapshot = self.collector.snapshot(job_id)
        if self._reporter is not None:
            self._reporter.offer(snapshot)
        assert self._consumer is not None
        self._consumer.publish(TELEMETRY.name, telemetry_key(self.config.node_id), encode(snapshot),
                               pika.BasicProperties(content_type="application/json", type=snapshot.type))


class _TelemetryReporter:
    """Posts the latest snapshot to the webhook off the loop's thread: HTTP must not delay heartbeats."""

    def __init__(self, post: Callable[[NodeTelemetry], None]) -> None:
        self._post = post
        self._latest: NodeTelemetry | None = None
        self._wake = threading.Event()
        threading.Thread(target=self._loop, name="fitwire-telemetry-http", daemon=True).start()

    def offer(self, snapshot: NodeTelemetry) -> None:
        self._latest = snapshot  # older unsent snapshots are superseded, never queued
        self._wake.set()

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            snapshot, self._latest = self._latest, None
            if snapshot is None:
                continue
            try:
                self._post(snapshot)
            except Exception as exc:  # the webhook is down: the broker copy still flows
                log.debug("telemetry report to the webhook failed: %s", exc)


def default_node_id() -> str:
    """Hostname plus the process id: two agents on one machine are two nodes."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _exit_text(code: int) -> str:
    return f"signal {-code}" if code < 0 else f"exit status {code}"
