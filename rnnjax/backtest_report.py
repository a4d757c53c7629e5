"""A backtest's report: every fold's test windows forecast by its members and scored against
the baselines, as the table of backtest.csv (`score_folds`) and the summary of backtest.json
(`summarize`), with its one-line `verdict`.

Each fold's linear baseline is fitted on the training windows of the data it is scored with:
its own with refit, the first fold's without (as the model).
"""
from __future__ import annotations

import jax
import numpy as np
import pandas as pd

from rnnjax import config as config_lib
from rnnjax import distribution_metrics
from rnnjax import distributions
from rnnjax import ensemble
from rnnjax import evaluate as evaluate_lib
from rnnjax import linear_baseline
from rnnjax import metrics as metrics_lib
from rnnjax import prediction
from rnnjax import train as train_lib
from rnnjax.backtest_folds import Folds


SCORES = ('rmse', 'mae', 'baseline_persistence_rmse', 'baseline_seasonal_naive_rmse',
          'baseline_linear_rmse', 'rmse_skill_vs_persistence', 'rmse_skill_vs_seasonal_naive',
          'rmse_skill_vs_linear',
          # a probabilistic head's, next to the naive distribution's
          'coverage', 'interval_width', 'pinball', 'crps', 'crps_skill_vs_naive',
          'baseline_naive_coverage', 'baseline_naive_interval_width', 'baseline_naive_pinball',
          'baseline_naive_crps')


def _test_scores(metrics: dict) -> dict:
  """`metrics.forecast_metrics`' validation scores renamed for a test part: 'val_' dropped."""
  def rename(tree):
    if isinstance(tree, dict):
      return {(k[4:] if k.startswith('val_') else k): rename(v) for k, v in tree.items()}
    if isinstance(tree, list):
      return [rename(v) for v in tree]
    return tree
  return rename(metrics)


def score_folds(config, folds: Folds, trainer: train_lib.Trainer, params, diverged_M,
                base: ensemble.Members) -> tuple[pd.DataFrame, dict]:
  """Forecasts every fold's test windows with its members and scores them.

  Args:
    config: the backtest's config.
    folds: from `plan_folds`.
    trainer: the trainer the members trained with (its `predict`).
    params: the members' reported parameters, [M, ...]: fold-major with refit, else [M0, ...]
      shared by every fold.
    diverged_M: [M] bool.
    base: the config's own member plan (M0 members per fold).

  Returns:
    (the backtest.csv table, the backtest.json contents without timings).
  """
  refit = config.backtest.refit
  head, levels = config.model.head, tuple(config.model.quantiles)
  rows, fold_results = [], []
  # The linear baseline of each fold's data, from its training windows (one fit without refit).
  linear_fits = ([linear_baseline.fit_linear(d) for d in folds.datasets] if refit
                 else [linear_baseline.fit_linear(folds.datasets[0])] * folds.num_folds)
  for k, (dataset, starts) in enumerate(zip(folds.datasets, folds.test_starts, strict=True)):
    linear = linear_fits[k]
    if refit:
      take = slice(k * base.size, (k + 1) * base.size)
      fold_params = jax.tree.map(lambda a, t=take: a[t], params)
      alive_M = ~np.asarray(diverged_M[take], bool)
    else:  # the first fold's members and scalers, at every origin
      fold_params, alive_M = params, ~np.asarray(diverged_M, bool)
      dataset = folds.datasets[0]
    scaled_M = prediction.predict_windows(trainer, fold_params, dataset.scaled_TF, starts,
                                          config.train.val_batch_size, member_axis=True)
    forecast_M = dataset.unscale_distribution(scaled_M, head, starts)  # [M, N, S(, Q or 2)]
    centers_MNS = np.stack([distributions.center(f[None], head, levels) for f in forecast_M])
    result = {'fold': k, 'test_windows': int(len(starts)),
              'train_windows': int(len(dataset.train_starts)),
              'val_windows': int(len(dataset.val_starts)),
              'members_alive': int(alive_M.sum())}
    result['origin'] = _origin_times(dataset, folds.origins[k])
    if alive_M.any():
      center_NS = distributions.center(forecast_M[alive_M], head, levels)
      scores = metrics_lib.forecast_metrics(dataset, starts, center_NS, config.data.season,
                                            'val', linear)
      if head != 'point':  # the naive distribution from the fold's own training windows
        evaluate_lib.merge_scores(scores, distribution_metrics.distribution_scores(
            dataset, starts, forecast_M[alive_M], config, train_starts=dataset.train_starts))
      result.update(_test_scores(scores))
      result['members_rmse'] = [metrics_lib.rmse(f, dataset.targets(starts)) if ok else None
                                for f, ok in zip(centers_MNS, alive_M, strict=True)]
    fold_results.append(result)
    rows.append(_fold_rows(config, dataset, starts, forecast_M, centers_MNS, base, k,
                           folds.origins[k], linear))
  return pd.concat(rows, ignore_index=True), summarize(fold_results, folds, refit)


def _origin_times(dataset, origins_R) -> dict | str:
  """A fold's origin time, the first its test part forecasts from (by series with several)."""
  times = {name: str(dataset.timestamps[dataset.bounds[i] + origins_R[i]])
           for i, name in enumerate(dataset.series_ids)}
  return times[''] if list(times) == [''] else times


def _fold_rows(config, dataset, starts_N, forecast_M, centers_MNS, base, fold, origins_R,
               linear: linear_baseline.LinearBaseline) -> pd.DataFrame:
  """backtest.csv's rows of one fold: every member, window and step, with every baseline's
  forecast (`linear`: the fold's fit); a probabilistic head's columns as scripts/predict.py
  writes them (`distribution_columns`)."""
  _, n, num_steps = centers_MNS.shape
  positions_NS = dataset.target_positions(starts_N)
  baselines = metrics_lib.baseline_forecasts(dataset, starts_N, config.data.season, linear)
  which_N = dataset.series_index(starts_N)
  origin_times_N = dataset.timestamps[dataset.bounds[:-1][which_N]
                                      + np.asarray(origins_R)[which_N]]
  window_rows = {
      'origin': np.repeat(np.asarray(origin_times_N), num_steps),
      'input_end': np.repeat(np.asarray(dataset.timestamps[starts_N + dataset.window - 1]),
                             num_steps),
      'step': np.tile(np.asarray(dataset.steps), n),
      'target_time': np.asarray(dataset.timestamps[positions_NS.reshape(-1)]),
      'actual': dataset.targets(starts_N).reshape(-1),
      'persistence': baselines['persistence'].reshape(-1),
      'seasonal_naive': baselines['seasonal_naive'].reshape(-1),
      'linear': baselines['linear'].reshape(-1),
  }
  if dataset.series_ids != ('',):
    window_rows = {'series': np.repeat(np.asarray(dataset.series_ids)[which_N], num_steps),
                   **window_rows}
  frames = []
  for m, record in enumerate(base.records()):
    head = {'fold': fold, 'member': m, 'seed': record['seed'],
            **{name: record[name] for name in base.swept}}
    frame = pd.DataFrame({**window_rows, 'forecast': centers_MNS[m].reshape(-1),
                          **distribution_columns(config, forecast_M[m])})
    for i, (key, value) in enumerate(head.items()):
      frame.insert(i, key, value)
    frames.append(frame)
  columns = list(frames[0].columns)
  last = ('actual', 'persistence', 'seasonal_naive', 'linear')
  return pd.concat(frames, ignore_index=True)[[c for c in columns if c not in last] + list(last)]


def distribution_columns(config, forecast) -> dict:
  """One member's distribution as flat columns [N * S]: the quantile head's 'q{level}' and the
  central interval's 'lower'/'upper'; the gaussian head's 'mean', 'scale', 'lower', 'upper';
  nothing for the point head.

  Args:
    config: model.head, model.quantiles, model.interval.
    forecast: [N, S, Q] or [N, S, 2] in the series' units.
  """
  head, levels = config.model.head, tuple(config.model.quantiles)
  if head == 'point':
    return {}
  f = np.asarray(forecast)
  out = {}
  if head == 'quantile':
    out = {f'q{level:g}': f[..., j].reshape(-1) for j, level in enumerate(levels)}
  else:
    out = {'mean': f[..., 0].reshape(-1), 'scale': f[..., 1].reshape(-1)}
  bounds_NS2 = distributions.quantiles_at(f[None], head, levels,
                                          config_lib.interval_bounds(config.model.interval))
  out['lower'], out['upper'] = bounds_NS2[..., 0].reshape(-1), bounds_NS2[..., 1].reshape(-1)
  return out


def summarize(fold_results: list[dict], folds: Folds, refit: bool) -> dict:
  """backtest.json: the folds, the mean and standard deviation over folds of each score, and
  how many folds the model's RMSE beats each baseline's."""
  scored = [r for r in fold_results if 'rmse' in r]
  out = {'folds': fold_results, 'num_folds': folds.num_folds, 'step': folds.step,
         'test_length': folds.test_length, 'refit': refit,
         'mean': {}, 'std': {}, 'wins': {}}
  for key in SCORES:
    if not any(key in r for r in scored):
      continue
    values_O = np.array([r[key] for r in scored if r.get(key) is not None], float)
    out['mean'][key] = float(values_O.mean()) if values_O.size else None
    out['std'][key] = float(values_O.std(ddof=1)) if values_O.size > 1 else None
  for name in metrics_lib.BASELINES:
    out['wins'][name] = sum(r['rmse'] < r[f'baseline_{name}_rmse'] for r in scored)
  if any('crps' in r for r in scored):
    out['wins']['naive_distribution_crps'] = sum(r['crps'] < r['baseline_naive_crps']
                                                 for r in scored)
    out['interval_level'] = scored[0]['interval_level']
  out['folds_scored'] = len(scored)
  return out


def verdict(results: dict) -> str:
  """One line: mean test RMSE over folds against each baseline's, and the folds won."""
  mean, n = results['mean'], results['folds_scored']
  parts = [f'{metrics_lib.BASELINE_NAMES[name]} {mean[f"baseline_{name}_rmse"]:.4g} '
           f'(wins {results["wins"][name]} of {n} folds)' for name in metrics_lib.BASELINES]
  line = f'backtest of {results["num_folds"]} folds: mean rmse {mean["rmse"]:.4g} vs ' + \
      ', '.join(parts)
  if 'crps' in mean:
    line += (f'; {results["interval_level"]:.0%} interval coverage {mean["coverage"]:.3f} '
             f'(naive {mean["baseline_naive_coverage"]:.3f}), crps {mean["crps"]:.4g} (naive '
             f'{mean["baseline_naive_crps"]:.4g}, wins '
             f'{results["wins"]["naive_distribution_crps"]} of {n} folds)')
  return line
