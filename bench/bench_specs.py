"""Checking a model spec: ``infer``'s shapes against pydantic's validation and Keras building the network.

``python -m bench bench_specs [--runs N] [--builds N]``. One 50-layer image spec (convolution
blocks with batch normalization, pools, dropout, a Dense head with ``units: null``) as the
webhook receives it, JSON text:

* ``ModelSpec.model_validate_json``: what the webhook pays anyway to read the spec;
* ``ModelSpec.model_validate`` on the already parsed dict;
* ``infer`` on the validated spec, shaped to 10 outputs (the shapes and weights of every layer);
* ``build_network``: Keras building the same network (``--builds`` times, it is slow).

The first three alternate ``--runs`` times; printed: the median, µs per layer and the ratio to
``infer``. No broker needed. Ratios hold on a busy machine; absolute figures are context only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from fitwire.contract.spec_shapes import infer
from fitwire.contract.specs import ModelSpec

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

OUTPUT_UNITS = 10


def spec_document(layers: int = 50) -> dict[str, Any]:
    """A buildable image spec of exactly ``layers`` layers (at least 8)."""
    head = [{"type": "GlobalAveragePooling2D"}, {"type": "Dense", "layer": {"units": 64, "activation": "relu"}},
            {"type": "Dropout", "layer": {"rate": 0.3}},
            {"type": "Dense", "layer": {"units": None, "activation": "softmax"}}]
    body: list[dict[str, Any]] = [{"type": "Rescaling", "layer": {"scale": 1 / 255}}]
    block = 0
    while len(body) + len(head) < layers:
        filters = 16 * 2 ** min(block // 3, 2)
        body += [{"type": "Conv2D", "layer": {"filters": filters, "kernel_size": 3, "padding": "same"}},
                 {"type": "BatchNormalization"}, {"type": "Activation", "layer": {"activation": "relu"}}]
        if block % 3 == 2:  # 64 px halves to 4 px over the blocks
            body.append({"type": "MaxPooling2D", "layer": {"pool_size": 2}})
        block += 1
    body = body[:layers - len(head)]
    return {"format": "images", "size": [64, 64, 3], "layers": body + head, "optimizer": "adam"}


def alternate(variants: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """The median seconds of each variant over ``rounds``, the variants taking turns."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            began = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - began)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2000, help="alternating rounds of the fast variants")
    parser.add_argument("--builds", type=int, default=5, help="Keras builds of the network")
    args = parser.parse_args(argv if argv is not None else [])

    document = spec_document()
    text = json.dumps(document)
    spec = ModelSpec.model_validate_json(text)
    layers = len(spec.layers)
    shapes = infer(spec, output_units=OUTPUT_UNITS)
    print(f"spec: {layers} layers, {len(text):,} bytes of JSON, {sum(s.params or 0 for s in shapes):,} weights, "
          f"output {shapes[-1].output_shape}")

    medians = alternate({
        "infer": lambda: infer(spec, output_units=OUTPUT_UNITS),
        "ModelSpec.model_validate": lambda: ModelSpec.model_validate(document),
        "ModelSpec.model_validate_json": lambda: ModelSpec.model_validate_json(text),
    }, args.runs)

    from fitwire.agent.spec_model import build_network

    assert spec.size is not None
    build_network(spec, spec.size, OUTPUT_UNITS)  # Keras's own first-use imports and setup, not timed
    builds = []
    for _ in range(args.builds):
        began = time.perf_counter()
        build_network(spec, spec.size, OUTPUT_UNITS)
        builds.append(time.perf_counter() - began)
    medians["build_network (Keras)"] = statistics.median(builds)

    base = medians["infer"]
    print(f"{'variant':<32} {'median µs':>11} {'µs/layer':>9} {'× infer':>9}")
    for name, seconds in medians.items():
        print(f"{name:<32} {seconds * 1e6:11.1f} {seconds * 1e6 / layers:9.2f} {seconds / base:9.1f}")
    print(f"({args.runs} alternating rounds; Keras: median of {args.builds} builds)")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
