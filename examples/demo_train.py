"""A small Keras training with the fitwire Tracker, paced so a person can watch it.

    python examples/demo_train.py --model-key KEY [--epochs 8 --steps 50 --delay 0.1]

An MLP learns a noisy linear rule on synthetic data. On a CPU such a model
trains in a blink, so a tiny pause after each batch (``--delay``) stretches it
to about 40 s: long enough to watch it in `fitwire watch` and to stop it with
`fitwire stop`. The token, webhook and broker come from the login file or
FITWIRE_TOKEN / FITWIRE_WEBHOOK_URL / FITWIRE_AMQP_URL.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

# Two cores are shared with the watcher, the webhook and the broker: keep TensorFlow to one thread.
for _var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402  (after the thread settings above)
import numpy as np  # noqa: E402

from fitwire.callback import Tracker  # noqa: E402
from fitwire.contract import new_id  # noqa: E402


class Pace(keras.callbacks.Callback):
    """Sleeps after every batch so a tiny model trains at a human pace."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        if self.delay > 0:
            time.sleep(self.delay)


def build(features: int, learning_rate: float) -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input(shape=(features,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy", metrics=["accuracy"]
    )
    return model


def data(samples: int, features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, features)).astype("float32")
    weights = rng.normal(size=(features,))
    y = ((x @ weights + rng.normal(scale=1.0, size=samples)) > 0).astype("float32")
    return x, y


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model-key", default=os.environ.get("FITWIRE_MODEL_KEY"), help="the model's key")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=50, help="batches per epoch")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--delay", type=float, default=0.1, help="seconds of pause after each batch")
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--run-id", default=None, help="a run id to use (default: a fresh one)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if not args.model_key:
        parser.error("--model-key (or FITWIRE_MODEL_KEY) is required")

    keras.utils.set_random_seed(args.seed)
    features = 20
    train = args.steps * args.batch_size
    x, y = data(train + train // 4, features, args.seed)
    run_id = args.run_id or new_id()
    tracker = Tracker(
        args.model_key,
        run_id=run_id,
        token=os.environ.get("FITWIRE_TOKEN") or None,
        webhook_url=os.environ.get("FITWIRE_WEBHOOK_URL") or None,
        amqp_url=os.environ.get("FITWIRE_AMQP_URL") or None,
    )
    # The first line tells a script (and a curious human) which run this is.
    print(f"run {run_id}", flush=True)
    model = build(features, args.learning_rate)
    history = model.fit(
        x[:train],
        y[:train],
        validation_data=(x[train:], y[train:]),
        epochs=args.epochs,
        batch_size=args.batch_size,
        callbacks=[tracker, Pace(args.delay)],
        verbose=0,
    )
    done = len(history.epoch)
    print(f"finished after {done} epoch(s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
