"""Change points in one KPI series, and the A/B verdict of tonight against the last nights.

Change points: E-divisive means (Matteson & James, "A Nonparametric Approach for Multiple Change
Point Analysis of Multivariate Data", JASA 2014), the method of Apache Otava and MongoDB's
signal-processing-algorithms, written once here because neither fits the lab's dependency set
(Otava pins numpy 2.2 / scipy < 1.17, MongoDB's package numpy 1.x):

- for a segment, the split τ (and end κ) that maximises the energy statistic
  Q(τ, κ) = m·n/(m+n) · (2/(m·n)·Σ|x−y| − 1/C(m,2)·Σ|x−x'| − 1/C(n,2)·Σ|y−y'|)
  between X = the segment up to τ (m points) and Y = from τ to κ (n points), both at least
  ``min_segment`` long, so a single spike can never be a segment of its own;
- its significance by a permutation test (the segment shuffled ``permutations`` times with a
  seeded generator, so the same history always gives the same answer); Otava's t-test shortcut
  is not used: testing the best of many splits with a plain t-test over-states significance;
- bisection: the strongest candidate over all segments is tested; while it is significant
  (p ≤ ``p_value``) and its shift is at least ``min_effect`` of the level before, it is kept and
  both sides are searched again;
- the newest nights, when the repeats are known: a change only ``tail_nights`` old has too few
  points for the split search to reach significance (the search pays for every split it could
  have chosen), so the block of the newest ``tail_nights`` nights is tested as one fixed split
  against up to ``tail_baseline`` nights before it (since the last change): a Mann–Whitney U
  test over the pooled repeats (p < ``tail_alpha``), every one of those nights shifted the same
  way on its own (its repeats one-sided against the baseline's, p < ``tail_night_alpha``, and
  at least half of ``tail_min_effect``), a shift of the mean of at least ``tail_min_effect``
  beyond where the baseline's own straight-line trend was heading, and E-divisive's energy of
  that fixed split confirmed by the permutation test (p ≤ ``p_value``).

A/B: tonight's repeats against the pooled repeats of the last N nights by a two-sided
Mann–Whitney U test (scipy), judged only with at least ``min_repeats`` repeats tonight, and only
"worse" or "better" when the median moved by more than the effect floor: the larger of
``min_effect`` and three times the spread between nights (repeats of one night share its
conditions, so the rank test alone would count a noisy night as a change).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class DetectorConfig:
    min_segment: int = 3  # nights on each side of a change: one or two odd nights are no change
    p_value: float = 0.01  # permutation test threshold
    permutations: int = 999  # p resolution 0.001
    min_effect: float = 0.03  # relative shift of the mean below which a change is not reported
    seed: int = 20260101
    tail_nights: int = 3  # the newest nights tested as one block (with the repeats)
    tail_baseline: int = 20  # ... against at most this many nights before them
    tail_min_baseline: int = 6
    tail_alpha: float = 0.001  # Mann–Whitney over the pooled repeats
    tail_night_alpha: float = 0.05  # each newest night on its own, one-sided
    tail_min_effect: float = 0.05


@dataclass(frozen=True)
class ChangePoint:
    index: int  # first point of the new level
    p_value: float
    before_mean: float
    after_mean: float
    relative: float  # (after - before) / |before|
    interval: tuple[float, float]  # 95% bootstrap interval of ``relative``
    method: str = "e-divisive"  # or "newest nights" (the fixed split of the tail test)


def _best_split(values: np.ndarray, min_segment: int) -> tuple[int, int, float]:
    """(τ, κ, Q) of the best split: X = values[:τ] against Y = values[τ:κ] (Matteson & James
    search the end κ too, so a level that comes back, a bad build later fixed, is still found);
    (-1, -1, 0) when there is none."""
    n = len(values)
    if n < 2 * min_segment:
        return -1, -1, 0.0
    dist = np.abs(values[:, None] - values[None, :])
    cum = np.zeros((n + 1, n + 1))
    cum[1:, 1:] = dist.cumsum(0).cumsum(1)
    # Every (τ, κ) at once, from the 2-D prefix sums of the distance matrix.
    tau = np.arange(min_segment, n - min_segment + 1)[:, None]
    kappa = np.arange(2 * min_segment, n + 1)[None, :]
    valid = kappa - tau >= min_segment
    kappa_ = np.where(valid, kappa, n)
    m, k = tau.astype(float), np.maximum(kappa_ - tau, 2).astype(float)
    between = cum[tau, kappa_] - cum[tau, tau]
    within_x = cum[tau, tau] / 2
    within_y = (cum[kappa_, kappa_] - cum[tau, kappa_] - cum[kappa_, tau] + cum[tau, tau]) / 2
    energy = 2 * between / (m * k) - within_x / (m * (m - 1) / 2) - within_y / (k * (k - 1) / 2)
    q = np.where(valid, m * k / (m + k) * energy, -np.inf)
    t, c = np.unravel_index(int(np.argmax(q)), q.shape)
    if q[t, c] <= 0:
        return -1, -1, 0.0
    return int(tau[t, 0]), int(kappa[0, c]), float(q[t, c])


def _energy(values: np.ndarray, at: int) -> float:
    """Q of the one split X = values[:at], Y = values[at:]."""
    x, y = values[:at], values[at:]
    m, k = len(x), len(y)
    within_x = np.abs(x[:, None] - x[None, :]).sum() / (m * (m - 1))
    within_y = np.abs(y[:, None] - y[None, :]).sum() / (k * (k - 1))
    between = np.abs(x[:, None] - y[None, :]).mean()
    return float(m * k / (m + k) * (2 * between - within_x - within_y))


def _fixed_split_p(
    values: np.ndarray, at: int, cfg: DetectorConfig, rng: np.random.Generator
) -> float:
    """Permutation p-value of the energy of one given split (no search, so no search to pay
    for); stops early like ``_permutation_p``."""
    q = _energy(values, at)
    exceed, limit = 0, cfg.p_value * (cfg.permutations + 1) - 1
    for done in range(1, cfg.permutations + 1):
        exceed += _energy(rng.permutation(values), at) >= q
        if exceed > limit:
            return (exceed + 1) / (done + 1)
    return (exceed + 1) / (cfg.permutations + 1)


def _tail_change(
    values: np.ndarray,
    raw: Sequence[Sequence[float]],
    start: int,
    cfg: DetectorConfig,
    rng: np.random.Generator,
) -> float | None:
    """The permutation p of a change at the first of the newest ``tail_nights`` nights
    against the nights since ``start``, or None when the tail test does not find one."""
    n, k = len(values), cfg.tail_nights
    at = n - k
    first = max(start, at - cfg.tail_baseline)
    if at - first < cfg.tail_min_baseline:
        return None
    base = values[first:at]
    shift = _relative(base.mean(), values[at:].mean())
    # Where the baseline was heading: a slow drift is not a change of the newest nights.
    x = np.arange(n - first, dtype=float)
    heading = np.polyval(np.polyfit(x[: at - first], base, 1), x[at - first :]).mean()
    if min(abs(shift), abs(_relative(heading, values[at:].mean()))) < cfg.tail_min_effect:
        return None
    sign = 1 if shift > 0 else -1
    pooled = [v for night in raw[first:at] for v in night]
    side = "greater" if sign > 0 else "less"
    for night in range(at, n):
        if _relative(base.mean(), values[night]) * sign < cfg.tail_min_effect / 2:
            return None
        if stats.mannwhitneyu(raw[night], pooled, alternative=side).pvalue >= cfg.tail_night_alpha:
            return None
    newest = [v for night in raw[at:] for v in night]
    if stats.mannwhitneyu(newest, pooled, alternative="two-sided").pvalue >= cfg.tail_alpha:
        return None
    p = _fixed_split_p(values[first:], at - first, cfg, rng)
    return p if p <= cfg.p_value else None


def _permutation_p(
    values: np.ndarray, q: float, cfg: DetectorConfig, rng: np.random.Generator
) -> float:
    """(1 + #permutations whose best Q reaches ``q``) / (1 + permutations). Stops as soon as
    the answer can only be "not significant": noise costs a few dozen shuffles, a real change
    the full count."""
    exceed, limit = 0, cfg.p_value * (cfg.permutations + 1) - 1
    for done in range(1, cfg.permutations + 1):
        *_, q_perm = _best_split(rng.permutation(values), cfg.min_segment)
        exceed += q_perm >= q
        if exceed > limit:
            return (exceed + 1) / (done + 1)
    return (exceed + 1) / (cfg.permutations + 1)


def _is_trend(values: np.ndarray, at: int, penalty: float = 2.0) -> bool:
    """Whether a straight line explains ``values`` about as well as two levels split at ``at``:
    a slow drift differs between its halves too, but it is not a step to pin on one night.
    The step must win by a BIC-style margin, n·ln(RSS_line / RSS_step) > penalty·ln(n)."""
    x = np.arange(len(values), dtype=float)
    line = np.polyval(np.polyfit(x, values, 1), x)
    rss_line = float(((values - line) ** 2).sum())
    left, right = values[:at], values[at:]
    rss_step = float(((left - left.mean()) ** 2).sum() + ((right - right.mean()) ** 2).sum())
    n = len(values)
    if rss_step <= 0:
        return rss_line <= 0
    return n * np.log(max(rss_line, 1e-300) / rss_step) <= penalty * np.log(n)


def relative_interval(
    before: np.ndarray, after: np.ndarray, rng: np.random.Generator, draws: int = 1000
) -> tuple[float, float]:
    """95% percentile-bootstrap interval of (mean(after) - mean(before)) / |mean(before)|."""
    b = rng.choice(before, size=(draws, len(before))).mean(axis=1)
    a = rng.choice(after, size=(draws, len(after))).mean(axis=1)
    rel = (a - b) / np.where(b == 0, 1.0, np.abs(b))
    low, high = np.percentile(rel, [2.5, 97.5])
    return float(low), float(high)


def _relative(before: float, after: float) -> float:
    if before == 0:
        return 0.0 if after == 0 else float(np.sign(after))
    return (after - before) / abs(before)


def change_points(
    series: list[float] | np.ndarray,
    cfg: DetectorConfig | None = None,
    raw: Sequence[Sequence[float]] | None = None,
) -> list[ChangePoint]:
    """The change points of one series, in order; with ``raw`` (each night's repeats) the
    newest nights are tested too (see the module's notes)."""
    cfg = cfg or DetectorConfig()
    values = np.asarray(series, dtype=float)
    rng = np.random.default_rng(cfg.seed)
    cuts = [0, len(values)]
    rejected: set[tuple[int, int]] = set()
    found: dict[int, float] = {}
    while True:
        candidates = []
        for start, end in itertools.pairwise(cuts):
            if (start, end) in rejected:
                continue
            tau, kappa, q = _best_split(values[start:end], cfg.min_segment)
            if tau > 0:
                candidates.append((q, start, end, start + tau, start + kappa))
        if not candidates:
            break
        q, start, end, at, stop = max(candidates)
        segment = values[start:end]
        p = _permutation_p(segment, q, cfg, rng)
        shift = _relative(values[start:at].mean(), values[at:stop].mean())
        trend = _is_trend(values[start:stop], at - start)
        if p > cfg.p_value or abs(shift) < cfg.min_effect or trend:
            rejected.add((start, end))
            continue
        found[at] = p
        cuts = sorted([*cuts, at])
    tail = len(values) - cfg.tail_nights
    tail_p = None
    if raw is not None and len(raw) == len(values) and tail not in found:
        tail_p = _tail_change(values, raw, max([0, *found]), cfg, rng)
        if tail_p is not None:
            found[tail] = tail_p
    points = []
    bounds = sorted(found)
    for i, at in enumerate(bounds):
        start = bounds[i - 1] if i else 0
        end = bounds[i + 1] if i + 1 < len(bounds) else len(values)
        before, after = values[start:at], values[at:end]
        points.append(
            ChangePoint(
                index=at,
                p_value=found[at],
                before_mean=float(before.mean()),
                after_mean=float(after.mean()),
                relative=float(_relative(before.mean(), after.mean())),
                interval=relative_interval(before, after, rng),
                method="newest nights" if at == tail and tail_p is not None else "e-divisive",
            )
        )
    return points


@dataclass(frozen=True)
class ABConfig:
    nights: int = 10  # tonight against this many nights before it
    min_repeats: int = 5
    alpha: float = 0.01
    min_effect: float = 0.05
    spread_factor: float = 3.0


@dataclass(frozen=True)
class ABVerdict:
    verdict: str  # "worse", "better", "same" or "not judged"
    reason: str
    relative: float = 0.0
    p_value: float = 1.0
    floor: float = 0.0
    tonight_n: int = 0
    baseline_n: int = 0


def ab_verdict(
    tonight: list[float], history: list[list[float]], sense: int, cfg: ABConfig | None = None
) -> ABVerdict:
    """Tonight's repeats against the pooled repeats of the nights before (newest last)."""
    cfg = cfg or ABConfig()
    nights = history[-cfg.nights :]
    baseline = [v for night in nights for v in night]
    if len(tonight) < cfg.min_repeats:
        return ABVerdict(
            "not judged",
            f"{len(tonight)} repeat(s) tonight (< {cfg.min_repeats})",
            tonight_n=len(tonight),
        )
    if len(nights) < 3 or len(baseline) < cfg.min_repeats:
        return ABVerdict("not judged", f"{len(nights)} earlier night(s) in this series (< 3)")
    base_median = float(np.median(baseline))
    relative = _relative(base_median, float(np.median(tonight)))
    night_medians = np.array([np.median(n) for n in nights])
    mad = float(np.median(np.abs(night_medians - np.median(night_medians)))) * 1.4826
    spread = mad / abs(base_median) if base_median else 0.0
    floor = max(cfg.min_effect, cfg.spread_factor * spread)
    if len(set(tonight) | set(baseline)) == 1:  # all equal (e.g. zero failures every night)
        return ABVerdict("same", "every value equal", floor=floor, tonight_n=len(tonight))
    p = float(stats.mannwhitneyu(tonight, baseline, alternative="two-sided").pvalue)
    common = dict(
        relative=relative, p_value=p, floor=floor, tonight_n=len(tonight), baseline_n=len(baseline)
    )
    if p >= cfg.alpha:
        return ABVerdict("same", f"no significant difference (p={p:.3g})", **common)
    if abs(relative) < floor:
        return ABVerdict("same", f"shift {relative:+.1%} below the floor {floor:.1%}", **common)
    verdict = "better" if relative * sense > 0 else "worse"
    return ABVerdict(verdict, f"{relative:+.1%} (p={p:.3g}, floor {floor:.1%})", **common)
