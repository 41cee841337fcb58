"""Training settings: frozen dataclasses with documented defaults per source.

Every setting that changes what the model learns lives here, so a run is
described by one ``TrainSettings`` value, and the parts that serving needs
(lookback, windows, half-lives) are written into the bundle's manifest.

Defaults per source were chosen on validation metrics, never on test:

- ``simulated``: the default sample covers 240 days of daily behaviour, so
  a 90-day lookback, a 14-day horizon and a 7-day stride give 30 cutoffs
  while each label window still contains several events per active user.
- ``movielens``: ml-latest-small spans 1996 to 2018, and most users rate
  in one or a few sittings, so labels need long windows. Lookback, horizon
  and stride in days were compared by the model's validation MSE relative
  to the tuned exponential decay's: (365, 30, 30) 0.99, (730, 90, 30)
  1.00, (365, 90, 30) 0.93, (365, 90, 14) 0.91, (180, 90, 30) 0.88,
  (365, 180, 14) 0.88 and (365, 180, 30) 0.87, the default. The 30-day
  stride was as good as 14 days at a third of the run time.
- ``files``: the user's own behaviour files; the same values as the
  simulated sample, which describes daily activity. Override them with
  ``--lookback-days``, ``--horizon-days`` and ``--stride-days``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

DEFAULT_EVENT_WEIGHT = 1.0


@dataclass(frozen=True)
class LabelSettings:
    """How cutoffs, labels and the time split are made.

    ``lookback_days`` is ``L``: a cutoff ``T`` uses the events in ``(T - L, T]``.
    ``horizon_days`` is ``H``: the label is the share of the user's event
    weight in ``(T, T + H]`` that falls on the topic. Cutoffs are
    ``stride_days`` apart. The last ``test_fraction`` of the cutoffs form
    the test split, the ``validation_fraction`` before them the validation
    split. A cutoff whose label window would reach the first cutoff of the
    next split is dropped, so the splits' label windows never overlap.

    ``event_weights`` gives the weight of an event type in the label, as
    ``(event_type, weight)`` pairs; every other type weighs
    ``DEFAULT_EVENT_WEIGHT`` (1.0). With the default (no pairs) the label is
    the share of the user's horizon events on the topic.
    """

    lookback_days: float
    horizon_days: float
    stride_days: float
    validation_fraction: float = 0.15
    test_fraction: float = 0.15
    event_weights: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        for name in ("lookback_days", "horizon_days", "stride_days"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name} must be > 0 days, got {value!r}")
        fractions = (self.validation_fraction, self.test_fraction)
        if any(not 0 < f < 1 for f in fractions) or sum(fractions) >= 1:
            raise ValueError(
                f"validation_fraction and test_fraction must be in (0, 1) and sum "
                f"to less than 1, got {self.validation_fraction!r} and "
                f"{self.test_fraction!r}"
            )
        if any(not weight >= 0 for _, weight in self.event_weights):
            raise ValueError(f"event weights must be >= 0, got {self.event_weights!r}")

    def weight_of(self) -> dict[str, float]:
        """Return the explicit event-type weights as a dict."""
        return dict(self.event_weights)

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as plain JSON types."""
        return {
            "lookback_days": self.lookback_days,
            "horizon_days": self.horizon_days,
            "stride_days": self.stride_days,
            "validation_fraction": self.validation_fraction,
            "test_fraction": self.test_fraction,
            "event_weights": dict(self.event_weights),
            "default_event_weight": DEFAULT_EVENT_WEIGHT,
        }


@dataclass(frozen=True)
class FeatureSettings:
    """Windows and half-lives of the feature builder, in days."""

    windows_days: tuple[float, ...] = (1.0, 7.0, 30.0, 90.0, 365.0)
    half_lives_days: tuple[float, ...] = (1.0, 7.0, 30.0, 90.0)


@dataclass(frozen=True)
class ModelSettings:
    """The Keras MLP and its training loop.

    Training stops when the validation loss has not improved for
    ``patience`` epochs, and the weights of the best epoch are kept.
    """

    hidden_units: tuple[int, ...] = (64, 32)
    batch_size: int = 1024
    max_epochs: int = 40
    patience: int = 5
    learning_rate: float = 1e-3
    seed: int = 42

    def __post_init__(self) -> None:
        if self.max_epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.max_epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience}")


@dataclass(frozen=True)
class BaselineSettings:
    """Grids tuned on the validation split, and the bootstrap size."""

    # Up to ten years: beyond the lookback a half-life barely weighs recent
    # events more, so the top of the grid is the no-decay share in practice.
    half_life_grid_days: tuple[float, ...] = (
        0.5, 1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 14.0, 21.0, 30.0, 45.0, 60.0, 90.0,
        120.0, 180.0, 365.0, 730.0, 1460.0, 3650.0,
    )  # fmt: skip
    ridge_alphas: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)
    bootstrap_samples: int = 1000


@dataclass(frozen=True)
class TrainSettings:
    """Every setting of one training run."""

    source: str
    labels: LabelSettings
    features: FeatureSettings = field(default_factory=FeatureSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    baselines: BaselineSettings = field(default_factory=BaselineSettings)

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as plain JSON types, for the manifest."""
        return {
            "source": self.source,
            "labels": self.labels.to_dict(),
            "features": {
                "windows_days": list(self.features.windows_days),
                "half_lives_days": list(self.features.half_lives_days),
            },
            "model": {
                "hidden_units": list(self.model.hidden_units),
                "batch_size": self.model.batch_size,
                "max_epochs": self.model.max_epochs,
                "patience": self.model.patience,
                "learning_rate": self.model.learning_rate,
                "seed": self.model.seed,
            },
            "baselines": {
                "half_life_grid_days": list(self.baselines.half_life_grid_days),
                "ridge_alphas": list(self.baselines.ridge_alphas),
                "bootstrap_samples": self.baselines.bootstrap_samples,
            },
        }


_DAILY = LabelSettings(lookback_days=90.0, horizon_days=14.0, stride_days=7.0)

DEFAULTS: dict[str, TrainSettings] = {
    "simulated": TrainSettings(source="simulated", labels=_DAILY),
    "movielens": TrainSettings(
        source="movielens",
        labels=LabelSettings(lookback_days=365.0, horizon_days=180.0, stride_days=30.0),
    ),
    "files": TrainSettings(source="files", labels=_DAILY),
}


def defaults_for(source: str) -> TrainSettings:
    """Return the default settings of a source kind.

    Parameters
    ----------
    source:
        ``simulated``, ``movielens`` or ``files`` (any behaviour files).

    Raises
    ------
    ValueError
        If the source kind has no defaults.
    """
    if source not in DEFAULTS:
        raise ValueError(
            f"no training defaults for source {source!r}; expected one of "
            f"{sorted(DEFAULTS)}"
        )
    return DEFAULTS[source]


def with_overrides(
    settings: TrainSettings,
    *,
    lookback_days: float | None = None,
    horizon_days: float | None = None,
    stride_days: float | None = None,
    max_epochs: int | None = None,
    seed: int | None = None,
) -> TrainSettings:
    """Return a copy of ``settings`` with the given values replaced.

    ``None`` keeps the current value.
    """
    label_changes = {
        name: value
        for name, value in (
            ("lookback_days", lookback_days),
            ("horizon_days", horizon_days),
            ("stride_days", stride_days),
        )
        if value is not None
    }
    model_changes = {
        name: value
        for name, value in (("max_epochs", max_epochs), ("seed", seed))
        if value is not None
    }
    return replace(
        settings,
        labels=replace(settings.labels, **label_changes),
        model=replace(settings.model, **model_changes),
    )
