"""The Keras interest model: a small MLP on the shared features.

Input ``features`` (float32, [batch, n_features]) goes through a
Normalization layer with the training rows' mean and variance, Dense 64 ReLU, Dense 32
ReLU and Dense 1 sigmoid named ``interest``, so predictions lie in [0, 1]
like the label. Loss is mean squared error, optimiser Adam, and training
stops early on the validation loss and keeps the best epoch's weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from train.config import ModelSettings

INPUT_NAME = "features"
OUTPUT_NAME = "interest"

# A feature whose training variance is at most this is treated as constant.
CONSTANT_VARIANCE = 1e-12
# The variance given to constant features. Keras divides by max(std, 1e-7),
# so a new value of a constant feature would be scaled by about 1e7 and
# saturate the network. With this variance a deviation d becomes d * 1e-6,
# so the model ignores features that never varied in training, for example
# an event type or a value that was always the same.
IGNORED_FEATURE_VARIANCE = 1e12


def normalization_statistics(
    train_features: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the per-feature mean and variance for the Normalization layer.

    Both are computed in float64 on the training rows. Constant features get
    ``IGNORED_FEATURE_VARIANCE``, so values unseen in training do not move
    the prediction.
    """
    values = np.asarray(train_features, dtype=np.float64)
    mean = values.mean(axis=0)
    variance = values.var(axis=0)
    variance[variance <= CONSTANT_VARIANCE] = IGNORED_FEATURE_VARIANCE
    return mean, variance


def constant_features(train_features: np.ndarray) -> np.ndarray:
    """Return a mask of the features that are constant on the training rows."""
    values = np.asarray(train_features, dtype=np.float64)
    return values.var(axis=0) <= CONSTANT_VARIANCE


def build_model(train_features: np.ndarray, settings: ModelSettings) -> keras.Model:
    """Build and compile the MLP, with its Normalization layer set from the rows.

    Parameters
    ----------
    train_features:
        The training rows, float32 [n, n_features]; only their mean and
        variance are used here (see ``normalization_statistics``).
    settings:
        Layer sizes, learning rate and seed.
    """
    n_features = train_features.shape[1]
    mean, variance = normalization_statistics(train_features)
    normalize = keras.layers.Normalization(
        axis=-1, mean=mean, variance=variance, name="normalize"
    )
    inputs = keras.Input(shape=(n_features,), name=INPUT_NAME, dtype="float32")
    hidden = normalize(inputs)
    for i, units in enumerate(settings.hidden_units, start=1):
        hidden = keras.layers.Dense(units, activation="relu", name=f"dense_{i}")(hidden)
    outputs = keras.layers.Dense(1, activation="sigmoid", name=OUTPUT_NAME)(hidden)
    model = keras.Model(inputs, outputs, name="interest_mlp")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=settings.learning_rate),
        loss="mse",
        metrics=["mae"],
    )
    return model


@dataclass
class FitResult:
    """The trained model and its per-epoch history."""

    model: keras.Model
    history: dict[str, list[float]]
    best_epoch: int
    epochs_run: int


def fit_model(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    validation_features: np.ndarray,
    validation_labels: np.ndarray,
    settings: ModelSettings,
    *,
    verbose: int = 2,
) -> FitResult:
    """Train the MLP with early stopping on the validation loss.

    Seeds Python, NumPy and TensorFlow with ``settings.seed``, which fixes
    the initial weights and the shuffling. NOTE: still nondeterministic are
    TensorFlow's multi-threaded CPU reductions, whose summation order can
    change with thread scheduling and hardware, so the last digits of the
    weights, and through early stopping even the epoch count, can differ
    between runs with the same seed.

    Parameters
    ----------
    verbose:
        Keras' own progress output: 0 silent, 1 progress bar, 2 one line
        per epoch.
    """
    keras.utils.set_random_seed(settings.seed)
    model = build_model(train_features, settings)
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=settings.patience, restore_best_weights=True
    )
    history = model.fit(
        train_features,
        train_labels,
        validation_data=(validation_features, validation_labels),
        batch_size=settings.batch_size,
        epochs=settings.max_epochs,
        callbacks=[stop],
        shuffle=True,
        verbose=verbose,
    )
    losses = {
        key: [float(v) for v in values] for key, values in history.history.items()
    }
    best_epoch = int(np.argmin(losses["val_loss"])) + 1
    return FitResult(
        model=model,
        history=losses,
        best_epoch=best_epoch,
        epochs_run=len(losses["val_loss"]),
    )


def predict(
    model: keras.Model, features: np.ndarray, batch_size: int = 8192
) -> np.ndarray:
    """Return the model's interest for each row, as a flat float32 array."""
    if len(features) == 0:
        return np.zeros(0, dtype=np.float32)
    output = model.predict(features, batch_size=batch_size, verbose=0)
    return np.asarray(output, dtype=np.float32).reshape(-1)
