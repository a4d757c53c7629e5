"""Point forecasts scored in the series' own units against the baselines every forecast is held
against: RMSE and MAE next to persistence, seasonal naive and the linear baseline
(`rnnjax.linear_baseline`), per step and per series, with skills and a one-line verdict.

Distribution forecasts are scored by `rnnjax.distribution_metrics`.
"""
from __future__ import annotations

import logging

import numpy as np

from rnnjax import chunked
from rnnjax import dataset as dataset_lib
from rnnjax import linear_baseline
from rnnjax.config import seasonal_lag
from rnnjax.errors import UserError


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


def baseline_forecasts(data: dataset_lib.Dataset, starts: np.ndarray, season: int,
                       linear: linear_baseline.LinearBaseline | None = None) -> dict:
  """The baselines' forecasts [N, S] of the windows at `starts`, each read from its own series.

  Args:
    data: the dataset.
    starts: [N] window starts.
    season: period of the seasonal-naive forecast.
    linear: a fit of `linear_baseline.fit_linear`; None leaves 'linear' out (the naive
      forecasts alone).

  Returns:
    {'persistence', 'seasonal_naive'(, 'linear')}: [N, S] in the series' units.

  Raises:
    UserError: the seasonal-naive value of a window lies before the start of its series.
  """
  positions_NS = data.target_positions(starts)
  steps_S = np.asarray(data.steps)
  lag_S = seasonal_lag(season, steps_S)
  which_N = data.series_index(starts)
  before_N = np.any(positions_NS - lag_S[None, :] < data.bounds[which_N][:, None], axis=1)
  if before_N.any():
    name = data.series_ids[which_N[np.flatnonzero(before_N)[0]]]
    series = f'series {name!r}' if name else 'the series'
    raise UserError(f'data.season={season} reaches before the start of {series} for its first '
                    'validation window; use a shorter season.')
  target_T = data.values_TF[:, 0]
  out = {'persistence': persistence_forecast(target_T, positions_NS, steps_S),
         'seasonal_naive': seasonal_naive_forecast(target_T, positions_NS, season, steps_S)}
  if linear is not None:
    out['linear'] = linear_baseline.linear_forecast(data, starts, linear)
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


def forecast_metrics(data: dataset_lib.Dataset, starts: np.ndarray, forecast: np.ndarray,
                     season: int, prefix: str,
                     linear: linear_baseline.LinearBaseline | None = None) -> dict:
  """RMSE and MAE of `forecast` (original units) and of every baseline on the same windows.

  Errors are over every window and step. For scored windows (any prefix but 'train') the
  baselines of BASELINES and the skills are added, with 'baseline_linear_fit_windows' (the
  training windows the linear baseline was fitted on), and `per_step` (a list, one entry per
  step, with multi-step targets) and `per_series` (by series id, with several series) hold the
  same scores restricted to that step or series. The windows are scored in chunks
  (`ForecastScores`), so memory beyond `forecast` stays bounded for any number of them.

  Args:
    data: the dataset the windows come from.
    starts: [N] window starts.
    forecast: [N, S] forecasts in the series' own units.
    season: period of the seasonal-naive baseline.
    prefix: names the scores: 'val' gives 'val_rmse', 'val_rmse_skill_vs_persistence', ...;
      'train' gives the model's errors alone (its windows are those the baselines are fitted
      on).
    linear: the linear baseline fitted on `data`'s training windows
      (`linear_baseline.fit_linear`), to score several window sets with one fit; None fits it
      here.
  """
  starts_N, forecast = np.asarray(starts), np.asarray(forecast)
  expected = (len(starts_N), len(data.steps))
  if forecast.shape != expected:  # broadcasting [N] against [N, 1] would score N * N pairs
    raise ValueError(f'forecasts of shape {forecast.shape} scored against targets of shape '
                     f'{expected}')
  scores = ForecastScores(data, season, prefix, linear)
  for chunk in chunked.window_chunks(len(starts_N)):
    scores.add(starts_N[chunk], forecast[chunk])
  return scores.result()


class ForecastScores:
  """`forecast_metrics` of windows given chunk by chunk: add each chunk's forecasts, then read
  the scores of all of them (`result`)."""

  def __init__(self, data: dataset_lib.Dataset, season: int, prefix: str,
               linear: linear_baseline.LinearBaseline | None = None):
    self.data, self.season, self.prefix = data, season, prefix
    self.scored = prefix != 'train'
    if self.scored and linear is None:
      linear = linear_baseline.fit_linear(data)
    self.linear = linear
    self.means = chunked.Means()
    self.names = ('model',) + (BASELINES if self.scored else ())

  def add(self, starts: np.ndarray, forecast: np.ndarray) -> None:
    """The windows at `starts` [n] and their forecasts [n, S] (series' units)."""
    data, means = self.data, self.means
    true_NS = data.targets(starts)
    forecasts = {'model': np.asarray(forecast, np.float64)}
    if forecasts['model'].shape != true_NS.shape:
      raise ValueError(f'forecasts of shape {forecasts["model"].shape} scored against targets '
                       f'of shape {true_NS.shape}')
    if self.scored:
      forecasts.update(baseline_forecasts(data, starts, self.season, self.linear))
    rows = (chunked.series_rows(data.series_index(starts))
            if self.scored and data.series_ids != ('',) else [])
    for name, forecast_NS in forecasts.items():
      error_NS = forecast_NS - true_NS
      for kind, value_NS in (('squared', error_NS ** 2), ('absolute', np.abs(error_NS))):
        means.add((name, kind), value_NS)
        if self.scored and data.multi_step:
          for j in range(value_NS.shape[1]):  # a contiguous column: np.mean's own summation
            means.add((name, kind, 'step', j), np.ascontiguousarray(value_NS[:, j]))
        for i, index in rows:
          means.add((name, kind, 'series', i), value_NS[index])

  def _scores(self, *where, keys: bool) -> dict:
    """The model's RMSE and MAE (named when `keys`), then each baseline's RMSE (and MAE when
    not `keys`), over the windows (and step or series) `where` names."""
    def score(name, kind):
      value = self.means.mean((name, kind, *where))
      return float(np.sqrt(value)) if kind == 'squared' else value
    out = ({f'{self.prefix}_rmse': score('model', 'squared'),
            f'{self.prefix}_mae': score('model', 'absolute')} if keys else {})
    for name in self.names[1:]:
      out[f'baseline_{name}_rmse'] = score(name, 'squared')
      if not keys:
        out[f'baseline_{name}_mae'] = score(name, 'absolute')
    return out

  def result(self) -> dict:
    """`forecast_metrics`' scores of every window added."""
    prefix, data = self.prefix, self.data
    out = self._scores(keys=True)
    if not self.scored:
      return {f'{prefix}_rmse': out[f'{prefix}_rmse'], f'{prefix}_mae': out[f'{prefix}_mae']}
    out = {f'{prefix}_rmse': out[f'{prefix}_rmse'], f'{prefix}_mae': out[f'{prefix}_mae'],
           **self._scores(keys=False)}
    for name in BASELINES:
      out[f'{prefix}_rmse_skill_vs_{name}'] = skill(out[f'{prefix}_rmse'],
                                                    out[f'baseline_{name}_rmse'])
    out['baseline_linear_fit_windows'] = self.linear.fit_windows
    if data.multi_step:
      out['per_step'] = [{'step': int(step), **self._scores('step', j, keys=True)}
                         for j, step in enumerate(data.steps)]
    if data.series_ids != ('',):
      out['per_series'] = {name: self._scores('series', i, keys=True)
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


def first_target_times(data: dataset_lib.Dataset, starts: np.ndarray) -> dict[str, str]:
  """{series id: the time of the first target of the windows at `starts` in that series}, as
  ISO text; for a dataset's test part, where each series' test part begins."""
  first_N = data.target_positions(starts).min(axis=1)
  return {data.series_ids[i]: data.timestamps[int(first_N[rows].min())].isoformat()
          for i, rows in chunked.series_rows(data.series_index(starts))}


BASELINES = ('persistence', 'seasonal_naive', 'linear')
# How a verdict names each baseline.
BASELINE_NAMES = {'persistence': 'persistence', 'seasonal_naive': 'seasonal naive',
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
    parts.append(f'{won} {BASELINE_NAMES[name]} ({base:.4g}, {said})')
  return f'{prefix}_rmse {model:.4g} ' + ', '.join(parts[:-1]) + ' and ' + parts[-1]
