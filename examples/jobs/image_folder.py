"""A job bundle that trains on an images dataset: a small CNN over ``training_data/<class>/``.

    fitwire datasets upload pets.zip --name pets
    fitwire jobs submit examples/jobs/image_folder.py --model KEY --dataset pets --epochs 3

The agent unpacks the zip once into its cache; ``$FITWIRE_DATASET`` is the folder holding
``training_data/`` and ``validation_data/``.
"""

from __future__ import annotations

import os


def build(size: int = 32, batch_size: int = 8, seed: int = 0):
    import keras

    root = os.environ["FITWIRE_DATASET"]

    def load(split: str):
        return keras.utils.image_dataset_from_directory(
            os.path.join(root, split), image_size=(size, size), batch_size=batch_size, seed=seed,
            label_mode="categorical")

    train, val = load("training_data"), load("validation_data")
    classes = len(train.class_names)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((size, size, 3)),
        keras.layers.Rescaling(1 / 255),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(classes, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model, train, val
