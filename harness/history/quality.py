"""How good the change-point detector is, measured on seeded synthetic nightly series.

Kinds of series (60 nights, multiplicative noise of realistic size for a benchmark on VMs):
``noise`` only, one ``step`` of 5–30% up or down, a single ``spike`` night, a slow ``drift``
(up to 8% over the whole series, no step), ``bimodal`` noise (two levels mixed at random every
night, as a cache that is sometimes warm), and ``step+spike``. A detection within ``tolerance``
nights of a true step is a true positive; any other detection is a false alarm.

``python -m harness.history.quality`` prints the figures (the README quotes them).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np

from harness.history.detect import DetectorConfig, change_points

KINDS = ("noise", "step", "spike", "drift", "bimodal", "step+spike")


@dataclass
class Series:
    kind: str
    values: np.ndarray
    steps: list[int] = field(default_factory=list)  # indexes where the level truly changes
    raw: np.ndarray | None = None  # nights × repeats


def synthetic(
    kind: str,
    rng: np.random.Generator,
    nights: int = 60,
    noise: float = 0.05,
    night_noise: float = 0.01,
    repeats: int = 5,
) -> Series:
    """One seeded series of ``kind`` around a level of 1000 (say MiB/s). As the nightly runs
    it: ``repeats`` repeats a night, each with ``noise`` (relative, normal), plus a shift of
    the whole night (``night_noise``: another VM, a neighbour); the night's value is the
    median of its repeats."""
    level = np.full(nights, 1000.0)
    steps: list[int] = []
    if kind in ("step", "step+spike"):
        at = int(rng.integers(12, nights - 12))
        level[at:] *= 1 + rng.choice([-1, 1]) * rng.uniform(0.05, 0.30)
        steps.append(at)
    if kind == "drift":
        level *= 1 + rng.choice([-1, 1]) * np.linspace(0, rng.uniform(0.03, 0.08), nights)
    if kind == "bimodal":  # two levels 8% apart, mixed at random per repeat
        level = level[:, None] * (1 + rng.choice([-0.04, 0.04], (nights, repeats)))
    else:
        level = np.repeat(level[:, None], repeats, axis=1)
    night = 1 + rng.normal(0, night_noise, (nights, 1))
    raw = level * night * (1 + rng.normal(0, noise, (nights, repeats)))
    if kind in ("spike", "step+spike"):
        at = int(rng.integers(5, nights - 5))
        raw[at] *= 1 + rng.choice([-1, 1]) * rng.uniform(0.3, 0.6)
    return Series(kind, np.median(raw, axis=1), steps, raw)


@dataclass
class Score:
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    series_with_false_alarm: int = 0
    series: int = 0

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        real = self.true_positives + self.false_negatives
        return self.true_positives / real if real else 1.0


def score(series: list[Series], cfg: DetectorConfig | None = None, tolerance: int = 3) -> Score:
    """Precision and recall of the detector over ``series``."""
    total = Score()
    for s in series:
        found = [c.index for c in change_points(s.values, cfg, s.raw)]
        matched = {t for t in s.steps if any(abs(f - t) <= tolerance for f in found)}
        false = [f for f in found if not any(abs(f - t) <= tolerance for t in s.steps)]
        total.true_positives += len(matched)
        total.false_negatives += len(s.steps) - len(matched)
        total.false_positives += len(false)
        total.series_with_false_alarm += bool(false)
        total.series += 1
    return total


def corpus(per_kind: int = 40, seed: int = 7) -> dict[str, list[Series]]:
    rng = np.random.default_rng(seed)
    return {kind: [synthetic(kind, rng) for _ in range(per_kind)] for kind in KINDS}


def nights_to_detect(step: float = 0.10, noise: float = 0.05, seed: int = 3) -> int | None:
    """After a throughput drop of ``step`` at night 40 (repeats with ``noise``, as
    ``synthetic``), how many nights (the step's own included) the history must hold before
    the detector reports it within one night of 40; None if not within 10 nights."""
    rng = np.random.default_rng(seed)
    s = synthetic("noise", rng, nights=50, noise=noise)
    assert s.raw is not None
    raw = s.raw.copy()
    raw[40:] *= 1 - step
    values = np.median(raw, axis=1)
    for seen in range(1, 11):
        found = change_points(values[: 40 + seen], raw=raw[: 40 + seen])
        if any(abs(c.index - 40) <= 1 for c in found):
            return seen
    return None


def replay_alarms(
    kind: str = "noise", count: int = 10, seed: int = 60, first: int = 12
) -> dict[str, int]:
    """Analyses that raised an alarm, by method, when ``count`` series of ``kind`` without a
    step are analysed night by night as the nightly does (every prefix from ``first`` nights
    on): the newest-nights test runs on every one of them, not only on a series' end."""
    rng = np.random.default_rng(seed)
    alarms = {"e-divisive": 0, "newest nights": 0}
    for _ in range(count):
        s = synthetic(kind, rng)
        assert s.raw is not None
        for n in range(first, len(s.values) + 1):
            for method in {c.method for c in change_points(s.values[:n], raw=s.raw[:n])}:
                alarms[method] += 1
    return alarms


def main() -> int:
    kinds = corpus()
    overall = Score()
    print(f"{'series':<11} {'n':>4} {'TP':>4} {'FP':>4} {'FN':>4} {'precision':>9} {'recall':>7}")
    for kind, series in kinds.items():
        s = score(series)
        for name in ("true_positives", "false_positives", "false_negatives", "series"):
            setattr(overall, name, getattr(overall, name) + getattr(s, name))
        # Kinds without a true step have no precision or recall of their own: their false
        # alarms count in the total.
        real = s.true_positives + s.false_negatives
        figures = f"{s.precision:>9.2f} {s.recall:>7.2f}" if real else f"{'–':>9} {'–':>7}"
        print(
            f"{kind:<11} {s.series:>4} {s.true_positives:>4} {s.false_positives:>4} "
            f"{s.false_negatives:>4} {figures}"
        )
    print(
        f"{'all':<11} {overall.series:>4} {overall.true_positives:>4} "
        f"{overall.false_positives:>4} {overall.false_negatives:>4} "
        f"{overall.precision:>9.2f} {overall.recall:>7.2f}"
    )
    seen = [nights_to_detect(seed=s) for s in range(20)]
    print(f"10% throughput drop, 5% noise: found after {seen} night(s) (20 seeds)")
    for kind in ("noise", "bimodal", "drift"):
        alarms = replay_alarms(kind)
        print(
            f"{kind}, 10 series replayed night by night (49 analyses each): analyses with an "
            f"alarm: e-divisive {alarms['e-divisive']}, newest nights {alarms['newest nights']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
