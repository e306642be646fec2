"""A job bundle that trains on a CSV dataset: a small MLP predicting one numeric column from the others.

Upload a table, then train on it (the agent fetches the dataset and caches it):

    fitwire datasets upload people.csv --name people
    fitwire jobs submit examples/jobs/csv_table.py --model KEY --dataset people --param target='"smoker"'

The job finds the file at ``$FITWIRE_DATASET``. Numeric columns only (Int, Float, Binary);
text columns are left out here (a model spec one-hot encodes them).
"""

from __future__ import annotations

import csv
import os


def build(target: str, validation_split: float = 0.25, seed: int = 0):
    import keras
    import numpy as np

    with open(os.environ["FITWIRE_DATASET"], newline="", encoding="utf-8-sig") as handle:
        dialect = csv.Sniffer().sniff(handle.read(4096), delimiters=",;\t|")
        handle.seek(0)
        rows = list(csv.reader(handle, dialect))
    header, body = rows[0], rows[1:]

    def numeric(column: int) -> bool:
        try:
            [float(row[column]) for row in body]
        except ValueError:
            return False
        return True

    features = [i for i, name in enumerate(header) if name != target and numeric(i)]
    x = np.array([[float(row[i]) for i in features] for row in body], dtype="float32")
    y = np.array([float(row[header.index(target)]) for row in body], dtype="float32")
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)
    cut = int(len(x) * (1 - validation_split))
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((len(features),)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model, (x[:cut], y[:cut]), (x[cut:], y[cut:])
