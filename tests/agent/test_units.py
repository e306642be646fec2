"""Unit tests of single agent modules (no broker): placement, checkpoints, dead letters, backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from fitwire.agent import LocalArtifacts, StaticGpus, fake_gpu
from fitwire.agent.checkpoint import Checkpoint, capture, restore
from fitwire.agent.telemetry import Collector
from fitwire.broker.dead_letters import death_reason
from fitwire.contract import JobSpec, NodeTelemetry, decode, encode
from fitwire.contract.placement import (
    choose_gpus,
    consumer_priority,
    gpus_needed,
    significant_change,
)


def spec(**kw: object) -> JobSpec:
    return JobSpec(model_key="m", bundle="b", **kw)  # type: ignore[arg-type]


def test_cpu_jobs_fit_anywhere_and_memory_alone_means_one_gpu() -> None:
    assert choose_gpus(spec(), []) == []
    assert gpus_needed(spec(gpu_memory_mb=100)) == 1
    assert choose_gpus(spec(gpu_memory_mb=100), []) is None


def test_choose_gpus_takes_the_emptiest_that_fit() -> None:
    gpus = [fake_gpu(0, 3000), fake_gpu(1, 9000), fake_gpu(2, 5000)]
    assert choose_gpus(spec(gpus=1, gpu_memory_mb=4000), gpus) == [1]
    assert choose_gpus(spec(gpus=2, gpu_memory_mb=4000), gpus) == [1, 2]
    assert choose_gpus(spec(gpus=3, gpu_memory_mb=4000), gpus) is None


def test_priority_is_the_largest_free_memory() -> None:
    assert consumer_priority([]) == 0
    assert consumer_priority([fake_gpu(0, 3000), fake_gpu(1, 9000)]) == 9000


def test_significant_change_follows_used_memory() -> None:
    before = [fake_gpu(0, 8000)]
    assert not significant_change(before, [fake_gpu(0, 7900)])
    assert significant_change(before, [fake_gpu(0, 7000)])
    assert significant_change(before, [])


def test_telemetry_snapshot_is_a_valid_wire_message(tmp_path: Path) -> None:
    probe = StaticGpus([fake_gpu(0, 1000)])
    snap = Collector("n1", ["default"], probe, tmp_path).snapshot("job1")
    again = decode(encode(snap), NodeTelemetry)
    assert again.gpus[0].memory_free_mb == 1000
    assert again.cpu_threads > 0 and again.memory_total_mb > 0 and again.disk_free_mb > 0
    assert again.job_id == "job1"


def test_death_reason_names_the_limit_and_the_last_attempt() -> None:
    reason = death_reason({"x-first-death-reason": "delivery_limit"}, "runner process died (signal 9)")
    assert reason.startswith("delivered 4 times") and reason.endswith("(signal 9)")


def test_artifact_keys_cannot_leave_the_store(tmp_path: Path) -> None:
    store = LocalArtifacts(tmp_path / "a")
    store.put("checkpoints/j1", b"x")
    assert store.get("checkpoints/j1") == b"x"
    assert store.get("checkpoints/none") is None
    with pytest.raises(ValueError):
        store.put("../escape", b"x")


def test_checkpoint_restores_weights_and_optimizer_state() -> None:
    keras = pytest.importorskip("keras")
    import numpy as np

    def model() -> object:
        keras.utils.set_random_seed(1)
        m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        m.compile(optimizer="adam", loss="mse")
        return m

    trained = model()
    trained.fit(np.ones((8, 3)), np.ones((8, 2)), epochs=2, verbose=0)  # type: ignore[attr-defined]
    blob = capture(trained, 1, {"loss": 0.5}).to_bytes()
    ckpt = Checkpoint.from_bytes(blob)
    assert ckpt.epoch == 1 and ckpt.logs == {"loss": 0.5}
    fresh = model()
    restore(fresh, ckpt)
    for a, b in zip(fresh.get_weights(), trained.get_weights(), strict=True):  # type: ignore[attr-defined]
        np.testing.assert_allclose(a, b)
    for a, b in zip(fresh.optimizer.variables, trained.optimizer.variables, strict=True):  # type: ignore[attr-defined]
        np.testing.assert_allclose(np.asarray(a), np.asarray(b))


def test_capacity_shortfall_tells_never_from_not_now() -> None:
    from fitwire.contract.placement import capacity_shortfall, fleet_shortfall

    busy = [fake_gpu(0, 1000, total_mb=16_000)]
    assert choose_gpus(spec(gpus=1, gpu_memory_mb=8000), busy) is None  # not now …
    assert capacity_shortfall(spec(gpus=1, gpu_memory_mb=8000), busy) is None  # … but some day
    assert capacity_shortfall(spec(gpus=2), busy) == "it needs 2 GPU(s) and the node has 1"
    assert capacity_shortfall(spec(gpu_memory_mb=20_000), busy) == (
        "it needs 1 GPU(s) with 20000 MiB each and the node has 0 that large")
    assert capacity_shortfall(spec(), []) is None  # a CPU job fits a CPU-only node
    assert fleet_shortfall(spec(gpus=2), []) is None  # nobody registered: no verdict from capacity
    assert fleet_shortfall(spec(gpus=2), [busy, busy + [fake_gpu(1, 10)]]) is None
    assert fleet_shortfall(spec(gpus=3), [busy, busy + [fake_gpu(1, 10)]]) == (
        "it needs 3 GPU(s) with 0 MiB each; the registered nodes have at most 2 GPU(s), the largest with 16384 MiB")


def test_job_spec_resource_fields_have_sane_maxima() -> None:
    from pydantic import ValidationError

    from fitwire.contract.messages import MAX_GPU_MEMORY_MB

    assert spec(gpu_memory_mb=MAX_GPU_MEMORY_MB).gpu_memory_mb == MAX_GPU_MEMORY_MB
    for bad in ({"gpu_memory_mb": 10**30}, {"gpus": 65}, {"gpus": -1}):
        with pytest.raises(ValidationError):
            spec(**bad)


def test_every_job_state_has_a_colour_in_the_cli() -> None:
    from fitwire.cli.jobs import STATE_STYLE
    from fitwire.contract.enums import JOB_ENDED, JOB_STATES

    assert set(STATE_STYLE) == set(JOB_STATES)
    assert "unschedulable" in JOB_ENDED and "queued" not in JOB_ENDED


def test_a_dead_letter_that_is_not_a_job_is_shown_as_such() -> None:
    from fitwire.broker.dead_letters import dead_letter_json

    shown = dead_letter_json({"x-first-death-reason": "rejected", "x-first-death-queue": "jobs.gpu"},
                             b"\xff garbage", "jobs.gpu")
    assert (shown["pool"], shown["reason"], shown["decodable"], shown["job_id"]) == ("gpu", "rejected", False, None)
    assert shown["body"] == "\ufffd garbage" and shown["error"].startswith("not a valid message")
