"""A tiny job bundle: a two-layer MLP on synthetic data (fits in seconds on a CPU).

Submit it with: fitwire jobs submit examples/jobs/tiny_mlp.py --model KEY --epochs 5
"""

from __future__ import annotations

import time


def build(samples: int = 256, features: int = 8, seed: int = 0, sleep_per_batch: float = 0.0):
    import keras
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, features)).astype("float32")
    y = (x.sum(axis=1) > 0).astype("float32")
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((features,)),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    if sleep_per_batch:  # lets demos and tests watch (or kill) a training mid-epoch
        class _Slow(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                time.sleep(sleep_per_batch)

        model.fit = _with_callback(model.fit, _Slow())
    split = samples * 3 // 4
    return model, (x[:split], y[:split]), (x[split:], y[split:])


def _with_callback(fit, callback):
    def fit_with(*args, callbacks=None, **kwargs):
        return fit(*args, callbacks=[*(callbacks or []), callback], **kwargs)

    return fit_with
