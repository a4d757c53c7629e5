"""Errors in the series' own units and the baselines every forecast is held against.

Point forecasts: RMSE and MAE next to persistence, seasonal naive and a linear baseline (ridge
regression on the model's own inputs, fitted on the training windows: `fit_linear`).
Distribution forecasts (the quantile and gaussian heads): coverage and width of the central
interval, pinball loss and CRPS, next to the naive distribution, the seasonal-naive forecast
plus the quantiles of its own residuals on the training windows (`naive_distribution`). The
scores take plain arrays;
`distribution_scores` computes them all for a dataset's windows.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from typing import Sequence

import numpy as np
from scipy import special
from sklearn import linear_model

from rnnjax import data as data_lib
from rnnjax import distributions
from rnnjax.config import interval_bounds, seasonal_lag
from rnnjax.errors import UserError

# Levels at which the naive distribution is described for its CRPS: its CDF between them is
# linear, close to the empirical distribution of the residuals it comes from.
NAIVE_LEVELS = tuple(k / 100 for k in range(1, 100))


def _flat(pred, true) -> tuple[np.ndarray, np.ndarray]:
  pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
  if pred.shape != true.shape:  # broadcasting [N] against [N, 1] would score N * N pairs
    raise ValueError(f'forecasts of shape {pred.shape} scored against targets of shape '
                     f'{true.shape}')
  return pred.ravel(), true.ravel()


def rmse(pred, true) -> float:
  """Root mean squared error of two same-shaped arrays, over every element."""
  pred, true = _flat(pred, true)
  return float(np.sqrt(np.mean((pred - true) ** 2)))


def mae(pred, true) -> float:
  """Mean absolute error of two same-shaped arrays, over every element."""
  pred, true = _flat(pred, true)
  return float(np.mean(np.abs(pred - true)))


def persistence_forecast(values_T: np.ndarray, target_positions: np.ndarray,
                         horizon) -> np.ndarray:
  """The last input as the forecast: y_hat[t + h] = y[t].

  Args:
    values_T: [T] the target series.
    target_positions: [N] or [N, S] positions of the targets.
    horizon: the steps h after the last input: an int, or [S] one per column of positions.
  """
  return values_T[target_positions - np.asarray(horizon)]


def seasonal_naive_forecast(values_T: np.ndarray, target_positions: np.ndarray, season: int,
                            horizon) -> np.ndarray:
  """The value one season (or the fewest whole seasons >= the step) before each target.

  Arguments as `persistence_forecast`; `horizon` may hold one step per column.
  """
  lag = seasonal_lag(season, np.asarray(horizon))
  if np.min(target_positions - lag) < 0:
    raise UserError(f'data.season={season} reaches before the start of the series for the '
                    'first validation window; use a shorter season.')
  return values_T[target_positions - lag]


# The linear baseline is fitted on at most this many training windows, evenly spaced over them
# (every series, every season), so that a long panel costs no more than a year of hourly data:
# milliseconds for a window of 24 values (docs/benchmarks.md, "The linear baseline's fit").
LINEAR_FIT_WINDOWS = 20_000
# Its ridge penalty, in scaled units: light against the thousands of windows it is fitted on
# (close to least squares), enough to settle inputs that are exactly collinear (a calendar column over
# the window, a constant column). A fixed value: cross-validating it costs several fits.
LINEAR_ALPHA = 0.1
# Windows forecast per call: bounds the design matrix of a large validation part.
_LINEAR_CHUNK = 20_000


@dataclasses.dataclass(frozen=True)
class LinearBaseline:
  """A ridge regression fitted on a dataset's training windows (`fit_linear`).

  Attributes:
    ridge: scikit-learn's fitted Ridge, from `linear_design`'s rows to the [N, S] changes of
      the scaled target from the window's last value.
    fit_windows: the training windows it was fitted on (at most LINEAR_FIT_WINDOWS).
  """
  ridge: linear_model.Ridge
  fit_windows: int


def linear_design(data: data_lib.Dataset, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """The linear baseline's inputs: what the model reads, as one row per window.

  Args:
    data: the dataset.
    starts: [N] window starts.

  Returns:
    (design float64 [N, W * F + S * K]: the window of every one of the F columns of
     `data.scaled_TF` (target, features, calendar), flattened time-major, then the K =
     `data.num_known` known-future inputs at each of the S target times; last_N1 float64
     [N, 1]: the window's last scaled target value.)
  """
  starts = np.asarray(starts)
  x_NWF, _ = data_lib.gather_windows(data.scaled_TF, starts, data.window, data.steps)
  future_NSK = data_lib.gather_future(data.scaled_TF, starts, data.window, data.steps,
                                      data.num_known)
  parts = [x_NWF.reshape(len(starts), -1)]
  if future_NSK is not None:
    parts.append(future_NSK.reshape(len(starts), -1))
  design = np.concatenate(parts, axis=1).astype(np.float64)
  return design, x_NWF[:, -1:, 0].astype(np.float64)


def fit_linear(data: data_lib.Dataset, train_starts: np.ndarray | None = None,
               max_windows: int = LINEAR_FIT_WINDOWS) -> LinearBaseline:
  """Fits the linear baseline: ridge (alpha LINEAR_ALPHA) on the training windows alone.

  Inputs are `linear_design`'s, the model's own; outputs are every target step at once, the
  scaled target the model is trained on minus the window's last scaled target value. With zero
  coefficients it is then persistence (plus the mean change), and the penalty pulls towards it;
  the last value is also an input, so any linear function of the window (a mean the series
  reverts to, a seasonal lag) stays expressible. With more than `max_windows` training windows
  it is fitted on `max_windows` of them, evenly spaced (no randomness): a year of hourly data
  is fitted whole.

  Args:
    data: the dataset; one ridge serves all its series, in scaled units, as the model does.
    train_starts: [N_train] windows to fit on; None is `data.train_starts`.
    max_windows: the most windows it is fitted on.

  Returns:
    The fit, for `linear_forecast` of any windows (validation, test, a backtest fold's).
  """
  starts = np.asarray(data.train_starts if train_starts is None else train_starts)
  if len(starts) > max_windows:
    starts = starts[np.linspace(0, len(starts) - 1, max_windows).round().astype(int)]
  design, last_N1 = linear_design(data, starts)
  change_NS = data.scaled_TF[data.target_positions(starts), 0].astype(np.float64) - last_N1
  ridge = linear_model.Ridge(alpha=LINEAR_ALPHA).fit(design, change_NS)
  return LinearBaseline(ridge=ridge, fit_windows=len(starts))


def linear_forecast(data: data_lib.Dataset, starts: np.ndarray,
                    linear: LinearBaseline) -> np.ndarray:
  """[N, S] the linear baseline's forecasts of the windows at `starts`, in the series' units
  (each window unscaled by its own series' target scaler)."""
  starts = np.asarray(starts)
  scaled_NS = np.empty((len(starts), len(data.steps)))
  for i in range(0, len(starts), _LINEAR_CHUNK):
    chunk = starts[i:i + _LINEAR_CHUNK]
    design, last_N1 = linear_design(data, chunk)
    scaled_NS[i:i + len(chunk)] = linear.ridge.predict(design).reshape(len(chunk), -1) + last_N1
  return data.unscale_target(scaled_NS, starts)


def baseline_forecasts(data: data_lib.Dataset, starts: np.ndarray, season: int,
                       linear: LinearBaseline | None = None) -> dict:
  """The baselines' forecasts [N, S] of the windows at `starts`, each read from its own series.

  Args:
    data: the dataset.
    starts: [N] window starts.
    season: period of the seasonal-naive forecast.
    linear: a fit of `fit_linear`; None leaves 'linear' out (the naive forecasts alone).

  Returns:
    {'persistence', 'seasonal_naive'(, 'linear')}: [N, S] in the series' units.

  Raises:
    UserError: the seasonal-naive value of a window lies before the start of its series.
  """
  positions = data.target_positions(starts)
  steps = np.asarray(data.steps)
  lag = seasonal_lag(season, steps)
  which = data.series_index(starts)
  before = np.any(positions - lag[None, :] < data.bounds[which][:, None], axis=1)
  if before.any():
    name = data.series_ids[which[np.flatnonzero(before)[0]]]
    series = f'series {name!r}' if name else 'the series'
    raise UserError(f'data.season={season} reaches before the start of {series} for its first '
                    'validation window; use a shorter season.')
  target = data.values_TF[:, 0]
  out = {'persistence': persistence_forecast(target, positions, steps),
         'seasonal_naive': seasonal_naive_forecast(target, positions, season, steps)}
  if linear is not None:
    out['linear'] = linear_forecast(data, starts, linear)
  return out


def skill(model_rmse: float, baseline_rmse: float) -> float | None:
  """1 - model / baseline; None (null in metrics.json) when the baseline's error is 0.

  A baseline with no error (a series flat over the validation part) leaves the skill
  undefined: it is reported as missing, with a warning, rather than as a division by zero.
  """
  if baseline_rmse == 0.0:
    logging.warning('a baseline has zero error on the scored windows (the series is flat there, '
                    'or exactly linear): its skill score is undefined and written as null')
    return None
  return 1.0 - model_rmse / baseline_rmse


def forecast_metrics(data: data_lib.Dataset, starts: np.ndarray, forecast: np.ndarray,
                     season: int, prefix: str, linear: LinearBaseline | None = None) -> dict:
  """RMSE and MAE of `forecast` (original units) and of every baseline on the same windows.

  Errors are over every window and step. For scored windows (any prefix but 'train') the
  baselines of BASELINES and the skills are added, with 'baseline_linear_fit_windows' (the
  training windows the linear baseline was fitted on), and `per_step` (a list, one entry per
  step, with multi-step targets) and `per_series` (by series id, with several series) hold the
  same scores restricted to that step or series.

  Args:
    data: the dataset the windows come from.
    starts: [N] window starts.
    forecast: [N, S] forecasts in the series' own units.
    season: period of the seasonal-naive baseline.
    prefix: names the scores: 'val' gives 'val_rmse', 'val_rmse_skill_vs_persistence', ...;
      'train' gives the model's errors alone (its windows are those the baselines are fitted
      on).
    linear: the linear baseline fitted on `data`'s training windows (`fit_linear`), to score
      several window sets with one fit; None fits it here.
  """
  true = data.targets(starts)
  out = {f'{prefix}_rmse': rmse(forecast, true), f'{prefix}_mae': mae(forecast, true)}
  if prefix == 'train':
    return out
  linear = fit_linear(data) if linear is None else linear
  baselines = baseline_forecasts(data, starts, season, linear)
  out.update(_scores(forecast, true, baselines, prefix))
  for name in BASELINES:
    out[f'{prefix}_rmse_skill_vs_{name}'] = skill(out[f'{prefix}_rmse'],
                                                  out[f'baseline_{name}_rmse'])
  out['baseline_linear_fit_windows'] = linear.fit_windows
  if data.multi_step:
    out['per_step'] = [
        {'step': int(step), **_scores(forecast[:, j], true[:, j],
                                      {k: v[:, j] for k, v in baselines.items()}, prefix,
                                      keys=True)}
        for j, step in enumerate(data.steps)]
  if data.series_ids != ('',):
    which = data.series_index(starts)
    out['per_series'] = {
        name: _scores(forecast[which == i], true[which == i],
                      {k: v[which == i] for k, v in baselines.items()}, prefix, keys=True)
        for i, name in enumerate(data.series_ids)}
  return out


def renamed(scores: dict, prefix: str) -> dict:
  """Validation scores (`forecast_metrics`' or `distribution_scores`' with prefix 'val') named
  for another part of the windows, e.g. prefix 'test'.

  'val_x' becomes '{prefix}_x' at every level; the baselines' top-level keys 'baseline_x'
  become '{prefix}_baseline_x', and 'per_step' and 'per_series' become '{prefix}_per_step'
  and '{prefix}_per_series' (whose entries keep 'baseline_x', as the validation ones do).
  """
  def inner(entry: dict) -> dict:
    return {(prefix + key[3:] if key.startswith('val_') else key): value
            for key, value in entry.items()}

  out = {}
  for key, value in scores.items():
    if key == 'per_step':
      out[f'{prefix}_per_step'] = [inner(entry) for entry in value]
    elif key == 'per_series':
      out[f'{prefix}_per_series'] = {name: inner(entry) for name, entry in value.items()}
    elif key.startswith('baseline_'):
      out[f'{prefix}_{key}'] = value
    else:
      out[inner({key: None}).popitem()[0]] = value
  return out


def first_target_times(data: data_lib.Dataset, starts: np.ndarray) -> dict[str, str]:
  """{series id: the time of the first target of the windows at `starts` in that series}, as
  ISO text; for a dataset's test part, where each series' test part begins."""
  positions = data.target_positions(starts).min(axis=1)
  which = data.series_index(starts)
  return {data.series_ids[i]: data.timestamps[int(positions[which == i].min())].isoformat()
          for i in np.unique(which)}


def _scores(forecast, true, baselines: dict, prefix: str, keys: bool = False) -> dict:
  """RMSE and MAE of the forecast (as {prefix}_rmse, {prefix}_mae when `keys`) and of each
  baseline."""
  out = ({f'{prefix}_rmse': rmse(forecast, true), f'{prefix}_mae': mae(forecast, true)}
         if keys else {})
  for name, base in baselines.items():
    out[f'baseline_{name}_rmse'] = rmse(base, true)
    if not keys:
      out[f'baseline_{name}_mae'] = mae(base, true)
  return out


BASELINES = ('persistence', 'seasonal_naive', 'linear')
_BASELINE_NAMES = {'persistence': 'persistence', 'seasonal_naive': 'seasonal naive',
                   'linear': 'linear ridge'}


def verdict(results: dict, prefix: str = 'val') -> str:
  """One line saying whether the model's RMSE on a part beat each baseline there.

  Args:
    results: metrics with '{prefix}_rmse' and the baselines' RMSE on the same windows
      ('baseline_{name}_rmse' for 'val', '{prefix}_baseline_{name}_rmse' for other parts) for
      every name in BASELINES.
    prefix: the part: 'val', or 'test' (`renamed`).

  Returns:
    e.g. 'val_rmse 0.651 beats persistence (7.064, skill 0.91), does not beat seasonal naive
    (0.600, skill -0.09) and beats linear ridge (0.702, skill 0.07)'.
  """
  model = results[f'{prefix}_rmse']
  base_prefix = '' if prefix == 'val' else f'{prefix}_'
  parts = []
  for name in BASELINES:
    base = results[f'{base_prefix}baseline_{name}_rmse']
    won = 'beats' if model < base else 'does not beat'
    score = skill(model, base) if base > 0 else None
    said = 'skill undefined' if score is None else f'skill {score:.2f}'
    parts.append(f'{won} {_BASELINE_NAMES[name]} ({base:.4g}, {said})')
  return f'{prefix}_rmse {model:.4g} ' + ', '.join(parts[:-1]) + ' and ' + parts[-1]


# ------------------------------------------------------------------ distribution forecasts


def _same_shape(name: str, a: np.ndarray, b: np.ndarray) -> None:
  if a.shape != b.shape:  # broadcasting [N] against [N, 1] would score N * N pairs
    raise ValueError(f'{name} of shape {a.shape} scored against targets of shape {b.shape}')


def interval_scores(lower_NS, upper_NS, y_NS, level: float) -> dict:
  """Scores of central intervals [lower, upper] with nominal level `level`, means over all.

  Args:
    lower_NS, upper_NS: [N, S] (any shape, the same) interval bounds.
    y_NS: targets of the same shape.
    level: the nominal level, e.g. 0.8 for the interval between the 0.1 and 0.9 quantiles.

  Returns:
    {'coverage': fraction of targets with lower <= y <= upper (ideally `level`),
     'width': mean of upper - lower,
     'interval_score': mean of width + (2 / alpha) * (how far y falls outside the interval),
       alpha = 1 - level (Gneiting and Raftery 2007): lower is better, it rewards narrow
       intervals and charges for every miss.}
  """
  lower, upper, y = (np.asarray(a, np.float64) for a in (lower_NS, upper_NS, y_NS))
  _same_shape('interval bounds', lower, y)
  _same_shape('interval bounds', upper, y)
  if not 0.0 < level < 1.0:
    raise ValueError(f'interval level must lie strictly between 0 and 1, got {level}')
  alpha = 1.0 - level
  miss = np.maximum(lower - y, 0.0) + np.maximum(y - upper, 0.0)
  return {'coverage': float(np.mean((lower <= y) & (y <= upper))),
          'width': float(np.mean(upper - lower)),
          'interval_score': float(np.mean(upper - lower + 2.0 / alpha * miss))}


def pinball(q_NSQ, y_NS, quantiles: Sequence[float]) -> np.ndarray:
  """[N, S] pinball loss of quantile forecasts, averaged over the Q levels.

  Per level tau: tau * (y - q) when y >= q, else (1 - tau) * (q - y), in the series' units.

  Args:
    q_NSQ: [N, S, Q] (any leading shape) quantiles at `quantiles`.
    y_NS: [N, S] targets (the leading shape of q_NSQ).
    quantiles: the Q levels.
  """
  q, y = np.asarray(q_NSQ, np.float64), np.asarray(y_NS, np.float64)
  tau = np.asarray(quantiles, np.float64)
  if q.shape != y.shape + tau.shape:
    raise ValueError(f'quantiles of shape {q.shape} scored against targets of shape {y.shape} at '
                     f'{tau.size} levels')
  error = y[..., None] - q
  return np.mean(np.maximum(tau * error, (tau - 1.0) * error), axis=-1)


def crps_gaussian(mean, scale, y) -> np.ndarray:
  """CRPS of normal forecasts, closed form, elementwise (arrays of one shape).

  CRPS(N(mu, sigma^2), y) = sigma * (z * (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi)),
  z = (y - mu) / sigma (Gneiting et al. 2005). Same units as y; lower is better.
  """
  mean, scale, y = (np.asarray(a, np.float64) for a in (mean, scale, y))
  _same_shape('gaussian means', mean, y)
  _same_shape('gaussian scales', scale, y)
  z = (y - mean) / scale
  pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
  return scale * (z * (2.0 * special.ndtr(z) - 1.0) + 2.0 * pdf - 1.0 / math.sqrt(math.pi))


def _mean_abs_normal(mu, sigma):
  """E|X| for X ~ N(mu, sigma^2)."""
  return sigma * 2.0 * np.exp(-0.5 * (mu / sigma) ** 2) / math.sqrt(2.0 * math.pi) + \
      mu * (2.0 * special.ndtr(mu / sigma) - 1.0)


def crps_gaussian_mixture(mean_M, scale_M, y) -> np.ndarray:
  """CRPS of equal-weight mixtures of normals, closed form: E|X - y| - E|X - X'| / 2.

  Args:
    mean_M, scale_M: [M, ...] the members' normals.
    y: [...] targets.

  Returns:
    [...] CRPS; with M = 1 it equals `crps_gaussian`.
  """
  mean, scale, y = (np.asarray(a, np.float64) for a in (mean_M, scale_M, y))
  _same_shape('gaussian members', mean[0], y)
  _same_shape('gaussian members', scale, mean)
  to_target = np.mean(_mean_abs_normal(mean - y[None], scale), axis=0)
  between = np.mean(_mean_abs_normal(mean[:, None] - mean[None, :],
                                     np.sqrt(scale[:, None] ** 2 + scale[None, :] ** 2)),
                    axis=(0, 1))
  return to_target - 0.5 * between


def crps_from_quantiles(q_NSQ, y_NS, quantiles: Sequence[float]) -> np.ndarray:
  """[N, S] CRPS of quantile forecasts: the exact CRPS of the distribution they stand for.

  The distribution is `rnnjax.distributions.quantile_knots`': its CDF F runs linearly between
  the quantiles and, past the outer two, on with the nearest segment's slope down to 0 and up
  to 1. CRPS = integral of (F(x) - 1{x >= y})^2 dx, integrated exactly segment by segment (the
  integrand is a quadratic on each side of y). A distribution described by few quantiles
  scores a little worse than itself: a normal described at 0.1, 0.5 and 0.9 scores 0.7% above
  the normal's own expected CRPS (at 0.01, ..., 0.99: 0.002%).

  Args:
    q_NSQ: [N, S, Q] (any leading shape) non-decreasing quantiles at the Q >= 2 `quantiles`.
    y_NS: [N, S] targets.
  """
  y = np.asarray(y_NS, np.float64)
  x, p = distributions.quantile_knots(q_NSQ, quantiles)
  if x.shape[:-1] != y.shape:
    raise ValueError(f'quantiles of shape {np.shape(q_NSQ)} scored against targets of shape '
                     f'{y.shape}')
  a, b = x[..., :-1], x[..., 1:]
  u, v = p[:-1], p[1:]
  width = b - a
  cut = np.clip(y[..., None], a, b)                 # y inside each segment
  f_cut = u + (v - u) * (cut - a) / np.where(width > 0, width, 1.0)
  left = (cut - a) * (u * u + u * f_cut + f_cut * f_cut) / 3.0      # F^2 below y
  gu, gv = 1.0 - f_cut, 1.0 - v
  right = (b - cut) * (gu * gu + gu * gv + gv * gv) / 3.0           # (1 - F)^2 above y
  outside = np.maximum(x[..., 0] - y, 0.0) + np.maximum(y - x[..., -1], 0.0)
  return np.sum(left + right, axis=-1) + outside


def naive_distribution(data: data_lib.Dataset, starts: np.ndarray, season: int,
                       levels: Sequence[float],
                       train_starts: np.ndarray | None = None) -> np.ndarray:
  """Quantiles of the naive distribution of the windows at `starts`.

  The seasonal-naive forecast of each window and step plus the `levels` quantiles of the
  seasonal-naive forecast's own residuals (target - forecast) over the training windows of the
  same series, at the same step. Training windows whose seasonal value lies before their
  series' start are left out.

  Args:
    data: the dataset.
    starts: [N] window starts to forecast.
    season: period of the seasonal-naive forecast.
    levels: the L increasing levels.
    train_starts: [N_train] windows the residuals come from; None is `data.train_starts`.

  Returns:
    [N, S, L] quantiles in the series' units.

  Raises:
    UserError: a series has no training window whose seasonal value lies inside it, or the
      seasonal value of a window at `starts` lies before its series' start.
  """
  tau = np.asarray(levels, np.float64)
  train = np.asarray(data.train_starts if train_starts is None else train_starts)
  naive_NS = baseline_forecasts(data, starts, season)['seasonal_naive']
  lag = seasonal_lag(season, np.asarray(data.steps))
  positions = data.target_positions(train)
  which_train = data.series_index(train)
  back = positions - lag[None, :]
  valid = back >= data.bounds[which_train][:, None]
  target = data.values_TF[:, 0]
  residuals = np.where(valid, target[positions] - target[np.maximum(back, 0)], np.nan)
  which = data.series_index(starts)
  per_series = np.full((len(data.series_ids), len(data.steps), tau.size), np.nan)
  for i in np.unique(which):
    rows = residuals[which_train == i]
    if np.any(np.sum(np.isfinite(rows), axis=0) == 0):
      name = data.series_ids[i]
      series = f'series {name!r}' if name else 'the series'
      raise UserError(f'data.season={season}: no training window of {series} has its seasonal-'
                      'naive value inside the series, so the naive distribution (the seasonal-'
                      'naive forecast plus its training residuals) is undefined; use a shorter '
                      'season or a longer series.')
    per_series[i] = np.nanquantile(rows, tau, axis=0).T
  return naive_NS[..., None] + per_series[which]


def _distribution_block(lower, upper, q, crps, y, level, levels, prefix: str) -> dict:
  scores = interval_scores(lower, upper, y, level)
  return {f'{prefix}_coverage': scores['coverage'],
          f'{prefix}_interval_width': scores['width'],
          f'{prefix}_interval_score': scores['interval_score'],
          f'{prefix}_pinball': float(np.mean(pinball(q, y, levels))),
          f'{prefix}_crps': float(np.mean(crps))}


def distribution_scores(data: data_lib.Dataset, starts: np.ndarray, forecast, config,
                        prefix: str = 'val', train_starts: np.ndarray | None = None) -> dict:
  """Every score of a distribution forecast of the windows at `starts`, with the naive one's.

  Args:
    data: the dataset the windows come from.
    starts: [N] window starts.
    forecast: the forecast in the series' own units (`Dataset.unscale_distribution`): for
      model.head 'quantile', [N, S, Q] quantiles at model.quantiles; for 'gaussian', [N, S, 2]
      (mean, scale). A leading member axis, [M, N, S, Q] or [M, N, S, 2], scores the
      equal-weight mixture of the M members (`rnnjax.distributions`).
    config: the run's config: model.head, model.quantiles, model.interval, data.season.
    prefix: names the model's scores ('val' gives 'val_coverage', ...).
    train_starts: [N_train] windows whose seasonal-naive residuals make the naive
      distribution; None is `data.train_starts`.

  Returns:
    Floats, the model's then the naive distribution's (`naive_distribution`):
      {prefix}_interval_level: model.interval, the nominal level.
      {prefix}_coverage, baseline_naive_coverage: fraction of targets inside the central
        interval (its bounds: the (1 -+ interval) / 2 quantiles).
      {prefix}_interval_width, baseline_naive_interval_width: its mean width.
      {prefix}_interval_score, baseline_naive_interval_score: `interval_scores`'.
      {prefix}_pinball, baseline_naive_pinball: mean pinball loss over model.quantiles
        (gaussian head: the quantiles of its normal, or of the mixture, at those levels).
      {prefix}_crps, baseline_naive_crps: mean CRPS; gaussian head in closed form
        (`crps_gaussian_mixture`), quantile head from its quantiles (`crps_from_quantiles`),
        the naive distribution from its quantiles at NAIVE_LEVELS.
      {prefix}_crps_skill_vs_naive: 1 - model CRPS / naive CRPS (None when the naive is 0).
    and, with several steps, 'per_step': [{'step', '{prefix}_coverage', '{prefix}_pinball',
    'baseline_naive_coverage', 'baseline_naive_pinball'}] per step; with several series,
    'per_series': {series id: the same keys but 'step'}.

  Raises:
    ValueError: a forecast of the wrong shape, or a point head.
    UserError: as `naive_distribution`.
  """
  m = config.model
  head, levels, level = m.head, tuple(float(q) for q in m.quantiles), float(m.interval)
  if head not in ('quantile', 'gaussian'):
    raise ValueError(f'distribution_scores needs a probabilistic model.head, got {head!r}')
  f = np.asarray(forecast, np.float64)
  f = f[None] if f.ndim == 3 else f
  last = len(levels) if head == 'quantile' else 2
  want = (len(starts), len(data.steps), last)
  if f.ndim != 4 or f.shape[1:] != want:
    raise ValueError(f'{head} forecasts have shape {np.shape(forecast)}, expected {want} '
                     '(windows, steps, quantiles or (mean, scale)), or with a leading member '
                     'axis')
  y = data.targets(starts)
  bounds = interval_bounds(level)
  q = distributions.quantiles_at(f, head, levels, levels)
  lower, upper = np.moveaxis(distributions.quantiles_at(f, head, levels, bounds), -1, 0)
  if head == 'gaussian':
    crps = crps_gaussian_mixture(f[..., 0], f[..., 1], y)
  else:
    crps = crps_from_quantiles(q, y, levels)
  union = np.unique(np.round(np.concatenate([levels, bounds, NAIVE_LEVELS]), 12))
  naive = naive_distribution(data, starts, config.data.season, union, train_starts)

  def naive_at(wanted):
    return naive[..., [int(np.argmin(np.abs(union - w))) for w in wanted]]

  n_q, (n_lower, n_upper) = naive_at(levels), np.moveaxis(naive_at(bounds), -1, 0)
  n_crps = crps_from_quantiles(naive, y, union)
  out = {f'{prefix}_interval_level': level,
         **_distribution_block(lower, upper, q, crps, y, level, levels, prefix),
         **_distribution_block(n_lower, n_upper, n_q, n_crps, y, level, levels, 'baseline_naive')}
  out[f'{prefix}_crps_skill_vs_naive'] = skill(out[f'{prefix}_crps'], out['baseline_naive_crps'])

  def short(rows, cols=slice(None)):
    return {f'{prefix}_coverage': float(np.mean((lower[rows, cols] <= y[rows, cols])
                                                & (y[rows, cols] <= upper[rows, cols]))),
            f'{prefix}_pinball': float(np.mean(pinball(q[rows, cols], y[rows, cols], levels))),
            'baseline_naive_coverage': float(np.mean((n_lower[rows, cols] <= y[rows, cols])
                                                     & (y[rows, cols] <= n_upper[rows, cols]))),
            'baseline_naive_pinball': float(np.mean(pinball(n_q[rows, cols], y[rows, cols],
                                                            levels)))}
  if data.multi_step:
    out['per_step'] = [{'step': int(step), **short(slice(None), slice(j, j + 1))}
                       for j, step in enumerate(data.steps)]
  if data.series_ids != ('',):
    which = data.series_index(starts)
    out['per_series'] = {name: short(which == i) for i, name in enumerate(data.series_ids)}
  return out


def distribution_verdict(results: dict, prefix: str = 'val') -> str:
  """One line on a distribution forecast against the naive distribution.

  Args:
    results: `distribution_scores`' keys.

  Returns:
    e.g. 'val_crps 0.412 beats the naive distribution (0.551, skill 0.25); the 80% interval
    holds 79.3% of the targets (naive 81.2%), mean width 1.62 (naive 2.1)'.
  """
  naive = 'baseline_naive' if prefix == 'val' else f'{prefix}_baseline_naive'
  model, base = results[f'{prefix}_crps'], results[f'{naive}_crps']
  won = 'beats' if model < base else 'does not beat'
  score = skill(model, base) if base > 0 else None
  said = 'skill undefined' if score is None else f'skill {score:.2f}'
  level = results[f'{prefix}_interval_level']
  return (f'{prefix}_crps {model:.4g} {won} the naive distribution ({base:.4g}, {said}); the '
          f'{level * 100:g}% interval holds {results[f"{prefix}_coverage"]:.1%} of the targets '
          f'(naive {results[f"{naive}_coverage"]:.1%}), mean width '
          f'{results[f"{prefix}_interval_width"]:.4g} '
          f'(naive {results[f"{naive}_interval_width"]:.4g})')
