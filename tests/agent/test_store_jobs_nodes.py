"""The store contract for jobs and nodes, on every backend (the ``store`` fixture is parametrized)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fitwire.webhook.store.base import (
    AlreadyExists,
    DoesNotExist,
    InvalidState,
    Store,
    Unauthenticated,
)


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def owner(store: Store) -> tuple[str, str]:
    user = store.create_user("ada", "x", now=_now())
    store.create_model(user.id, "mk1", "mnist", _now())
    return user.id, "mk1"


def _job(store: Store, owner: tuple[str, str], job_id: str = "j1") -> None:
    store.create_job(owner[0], job_id=job_id, run_id=f"r-{job_id}", pool="default", model_key=owner[1],
                     spec={"model_key": owner[1], "epochs": 3}, now=_now())


def test_a_job_is_created_queued_and_seen_by_its_owner_only(store: Store, owner: tuple[str, str]) -> None:
    _job(store, owner)
    job = store.get_job("j1", owner[0])
    assert (job.state, job.owner, job.owner_id, job.run_id, job.spec["epochs"]) == ("queued", "ada", owner[0], "r-j1", 3)
    other = store.create_user("bob", "x", now=_now())
    with pytest.raises(DoesNotExist):
        store.get_job("j1", other.id)
    assert store.list_jobs(other.id) == []
    assert [j.job_id for j in store.list_jobs(owner[0])] == ["j1"]
    assert [j.job_id for j in store.list_jobs()] == ["j1"]


def test_a_job_needs_the_owners_model_and_a_fresh_id(store: Store, owner: tuple[str, str]) -> None:
    other = store.create_user("bob", "x", now=_now())
    with pytest.raises(DoesNotExist):
        store.create_job(other.id, job_id="j2", run_id="r", pool="default", model_key=owner[1], spec={}, now=_now())
    _job(store, owner)
    with pytest.raises(AlreadyExists):
        _job(store, owner)


def test_job_states_move_forward_and_ended_jobs_never_change(store: Store, owner: tuple[str, str]) -> None:
    _job(store, owner)
    running = store.set_job_state("j1", "running", reason=None, node_id="n1", now=_now())
    assert (running.state, running.node_id) == ("running", "n1")
    queued = store.set_job_state("j1", "queued", reason="runner died", node_id=None, now=_now())
    assert (queued.state, queued.reason, queued.node_id) == ("queued", "runner died", "n1")
    done = store.set_job_state("j1", "succeeded", reason=None, node_id="n2", now=_now())
    assert (done.state, done.node_id) == ("succeeded", "n2")
    again = store.set_job_state("j1", "succeeded", reason=None, node_id="n2", now=_now())
    assert again.state == "succeeded"
    with pytest.raises(InvalidState):
        store.set_job_state("j1", "running", reason=None, node_id="n3", now=_now())
    with pytest.raises(DoesNotExist):
        store.set_job_state("nope", "running", reason=None, node_id=None, now=_now())


def test_only_a_queued_job_can_be_cancelled(store: Store, owner: tuple[str, str]) -> None:
    _job(store, owner, "j1")
    _job(store, owner, "j2")
    assert store.cancel_job(owner[0], "j1", _now()).state == "cancelled"
    store.set_job_state("j2", "running", reason=None, node_id="n1", now=_now())
    with pytest.raises(InvalidState):
        store.cancel_job(owner[0], "j2", _now())
    with pytest.raises(InvalidState):  # a cancelled job cannot be claimed
        store.set_job_state("j1", "running", reason=None, node_id="n1", now=_now(),
                            allowed_from=frozenset({"queued", "running"}))


def test_nodes_are_found_by_token_and_keep_their_last_report(store: Store, owner: tuple[str, str]) -> None:
    node = store.create_node("n1", "gpu-box", "a" * 64, owner[0], _now())
    assert (node.name, node.last_seen, node.telemetry) == ("gpu-box", None, None)
    assert store.node_for_token("a" * 64).node_id == "n1"
    with pytest.raises(Unauthenticated):
        store.node_for_token("b" * 64)
    with pytest.raises(AlreadyExists):
        store.create_node("n1", "again", "c" * 64, owner[0], _now())
    report = {"node_id": "n1", "gpus": [{"index": 0, "memory_free_mb": 1000}]}
    seen = store.report_node("n1", report, agent_version="0.1.0", protocol_version=1, now=_now())
    assert seen.telemetry == report and seen.last_seen is not None and seen.protocol_version == 1
    assert [n.node_id for n in store.list_nodes()] == ["n1"]
    assert store.get_node("n1").agent_version == "0.1.0"
    with pytest.raises(DoesNotExist):
        store.report_node("nope", report, agent_version="0.1.0", protocol_version=1, now=_now())


def test_a_claim_takes_a_queued_job_once_per_delivery_and_its_token_dies_with_it(
    store: Store, owner: tuple[str, str]
) -> None:
    _job(store, owner)
    with pytest.raises(Unauthenticated):
        store.job_for_token("t" * 64)
    job = store.claim_job("j1", node_id="n1", token_hash="t" * 64, delivery=0, now=_now())
    assert (job.state, job.node_id, job.claimed_delivery) == ("running", "n1", 0)
    assert store.job_for_token("t" * 64).job_id == "j1"
    with pytest.raises(InvalidState):  # the same delivery again: a duplicate, or another node's try
        store.claim_job("j1", node_id="n2", token_hash="u" * 64, delivery=0, now=_now())
    # the broker redelivered it (its agent died): the new claim's token replaces the old one
    again = store.claim_job("j1", node_id="n2", token_hash="v" * 64, delivery=1, now=_now())
    assert (again.node_id, again.claimed_delivery) == ("n2", 1)
    with pytest.raises(Unauthenticated):
        store.job_for_token("t" * 64)
    assert store.job_for_token("v" * 64).node_id == "n2"
    store.set_job_state("j1", "succeeded", reason=None, node_id="n2", now=_now())
    with pytest.raises(Unauthenticated):  # ended: its token is dead
        store.job_for_token("v" * 64)
    with pytest.raises(InvalidState):
        store.claim_job("j1", node_id="n2", token_hash="w" * 64, delivery=5, now=_now())
    with pytest.raises(DoesNotExist):
        store.claim_job("never-seen", node_id="n2", token_hash="x" * 64, delivery=0, now=_now())


def test_a_jobs_run_id_is_reserved_for_its_owner_and_model(store: Store, owner: tuple[str, str]) -> None:
    from fitwire.webhook.store.base import RunStart

    _job(store, owner)
    squatter = store.create_user("bob", "x", now=_now())
    store.create_model(squatter.id, "bobs", "bob's", _now())
    with pytest.raises(AlreadyExists):
        store.begin_run(squatter.id, RunStart(run_id="r-j1", model_key="bobs", started_at=_now()))
    run, created = store.begin_run(owner[0], RunStart(run_id="r-j1", model_key=owner[1], started_at=_now()))
    assert created and run.owner == "ada"


def test_a_revoked_node_is_unknown_to_its_token_and_keeps_its_pools(store: Store, owner: tuple[str, str]) -> None:
    store.create_node("n1", "gpu-box", "a" * 64, owner[0], _now())
    seen = store.report_node("n1", {}, agent_version="0.1.0", protocol_version=2, now=_now(), pools=("gpu", "default"))
    assert seen.pools == ("gpu", "default")
    assert store.report_node("n1", {}, agent_version="0.1.0", protocol_version=2, now=_now()).pools == ("gpu", "default")
    revoked = store.revoke_node("n1", _now())
    assert revoked.revoked_at is not None
    assert store.revoke_node("n1", _now()).revoked_at == revoked.revoked_at  # the first time stays
    with pytest.raises(Unauthenticated):
        store.node_for_token("a" * 64)
    with pytest.raises(DoesNotExist):
        store.revoke_node("nope", _now())
