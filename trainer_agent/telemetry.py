"""What a node reports about itself: host, CPU, memory, disk and, per GPU, what NVML says.

The GPU side goes through a :class:`GpuProbe`, so tests (and a future AMD probe)
can inject their own. No NVIDIA driver is not an error: the node is CPU-only.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from fitwire.contract import PROTOCOL_VERSION, GpuInfo, NodeTelemetry

log = logging.getLogger(__name__)

AGENT_VERSION = "0.1.0"


class GpuProbe(Protocol):
    """Reads the node's GPUs; must not raise once constructed."""

    def gpus(self) -> list[GpuInfo]: ...


class NoGpus:
    """The probe of a CPU-only node."""

    def gpus(self) -> list[GpuInfo]:
        return []


class StaticGpus:
    """A probe that reports fixed GPUs (tests, and `--fake-gpu` for demos without a GPU)."""

    def __init__(self, gpus: Sequence[GpuInfo]) -> None:
        self._gpus = list(gpus)

    def set(self, gpus: Sequence[GpuInfo]) -> None:
        self._gpus = list(gpus)

    def gpus(self) -> list[GpuInfo]:
        return list(self._gpus)


def fake_gpu(index: int, free_mb: int, total_mb: int = 16_384, name: str = "Fake GPU") -> GpuInfo:
    return GpuInfo(
        index=index, name=name, memory_total_mb=total_mb,
        memory_used_mb=max(0, total_mb - free_mb), memory_free_mb=free_mb,
    )


class NvmlProbe:
    """NVIDIA GPUs through pynvml (package ``nvidia-ml-py``)."""

    def __init__(self) -> None:
        import pynvml  # optional: only agents on NVIDIA machines have a driver

        pynvml.nvmlInit()
        self._nvml = pynvml

    def gpus(self) -> list[GpuInfo]:
        nv = self._nvml
        found: list[GpuInfo] = []
        try:
            count = nv.nvmlDeviceGetCount()
        except nv.NVMLError as exc:
            log.warning("NVML stopped answering (%s); reporting no GPUs", exc)
            return []
        for index in range(count):
            try:
                handle = nv.nvmlDeviceGetHandleByIndex(index)
                mem = nv.nvmlDeviceGetMemoryInfo(handle)
                name = nv.nvmlDeviceGetName(handle)
                found.append(
                    GpuInfo(
                        index=index,
                        name=name.decode() if isinstance(name, bytes) else str(name),
                        memory_total_mb=int(mem.total) // 2**20,
                        memory_used_mb=int(mem.used) // 2**20,
                        memory_free_mb=int(mem.free) // 2**20,
                        utilization_pct=_or_none(lambda h=handle: nv.nvmlDeviceGetUtilizationRates(h).gpu),
                        temperature_c=_or_none(
                            lambda h=handle: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)
                        ),
                    )
                )
            except nv.NVMLError as exc:  # one sick GPU must not hide the others
                log.warning("NVML could not read GPU %d: %s", index, exc)
        return found


def _or_none(read: object) -> float | None:
    try:
        return float(read())  # type: ignore[operator]
    except Exception:  # utilisation/temperature are unsupported on some boards
        return None


def default_probe() -> GpuProbe:
    """NVML when a driver answers, else a CPU-only probe (logged once, not an error)."""
    try:
        return NvmlProbe()
    except Exception as exc:  # ImportError, NVMLError_LibraryNotFound, DriverNotLoaded, …
        log.info("no NVIDIA driver (%s): this is a CPU-only node", exc)
        return NoGpus()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class Collector:
    """Builds :class:`NodeTelemetry` snapshots; the static parts are read once."""

    def __init__(
        self, node_id: str, pools: Sequence[str], probe: GpuProbe, disk_path: Path | None = None
    ) -> None:
        self.node_id = node_id
        self.pools = list(pools)
        self.probe = probe
        self.hostname = socket.gethostname()
        self.cpu_model = _cpu_model()
        self.cpu_threads = os.cpu_count() or 0
        self.disk_path = disk_path or Path.home()

    def snapshot(self, job_id: str | None = None) -> NodeTelemetry:
        import psutil  # agent extra

        mem = psutil.virtual_memory()
        try:
            disk_free = shutil.disk_usage(self.disk_path).free // 2**20
        except OSError:
            disk_free = 0
        return NodeTelemetry(
            node_id=self.node_id,
            hostname=self.hostname,
            agent_version=AGENT_VERSION,
            protocol_version=PROTOCOL_VERSION,
            pools=self.pools,
            cpu_model=self.cpu_model,
            cpu_threads=self.cpu_threads,
            cpu_percent=psutil.cpu_percent(interval=None),
            memory_total_mb=mem.total // 2**20,
            memory_available_mb=mem.available // 2**20,
            disk_free_mb=disk_free,
            gpus=self.probe.gpus(),
            job_id=job_id,
        )
