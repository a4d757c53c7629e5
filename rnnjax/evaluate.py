"""Scores a finished run: one scorer for [M, N, S] forecasts; a single run is one member.

`evaluate` forecasts every training, validation and test window with the reported parameters
(`train.final_params`), scores the forecast in the series' own units next to the
baselines (`rnnjax.metrics`), and builds the plot panels and the history table. An ensemble is
scored on the forecast of its members that did not diverge, and each member on its own; a
single run's forecast is that of one member, so both go through the same lines.

The ensemble forecast of point heads is the members' mean, with the members' quantiles drawn
as a band: a spread across seeds, not a predictive interval. Members of a probabilistic head
are mixed: the ensemble's distribution is the equal-weight mixture of theirs
(`rnnjax.distributions`), scored like one model's, its point forecast the mixture's median
(quantile head) or mean (gaussian head).
"""
from __future__ import annotations

import logging
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from rnnjax import chunked
from rnnjax import config as config_lib
from rnnjax import dataset as dataset_lib
from rnnjax import devices
from rnnjax import distribution_metrics
from rnnjax import distributions
from rnnjax import ensemble
from rnnjax import linear_baseline
from rnnjax import losses
from rnnjax import metrics as metrics_lib
from rnnjax import prediction
from rnnjax import train as train_lib
from rnnjax import train_data

MEMBER_METRICS = ('val_rmse', 'val_mae', 'val_mse_scaled', 'train_rmse', 'train_mae')
TEST_MEMBER_METRICS = ('test_rmse', 'test_mae')


def evaluate(config, data: dataset_lib.Dataset, trainer: train_lib.Trainer, state, history: dict,
             members: ensemble.Members | None) -> tuple[dict, dict, pd.DataFrame]:
  """Forecasts and scores every training, validation and test window.

  Args:
    config: the run's config.
    data: the run's dataset.
    trainer: from `train.make_trainer`.
    state: the final TrainState (leaves [M, ...] with padding members for an ensemble).
    history: 'loss', 'val_loss', 'active': [E] arrays, or [M, E] for an ensemble.
    members: the ensemble's plan, or None for a single run.

  Returns:
    (metrics, panels for plots.plot_predictions, history table for history.csv).
  """
  # On the host, as `warm_up` prepared the programs for, wherever the state lives.
  params = devices.to_host(train_lib.final_params(state, config.train.early_stopping_patience > 0))
  if members is None:
    diverged_M = np.zeros(1, bool)  # a diverged single run stops before it is scored
  else:
    params = jax.tree.map(lambda a: a[:members.size], params)
    diverged_M = devices.to_host(state.diverged)[:members.size]
  scaled = {part: member_forecasts(config, data, trainer, params, members is not None, starts)
            for part, starts in data.parts.items()}
  results, panels, per_member = score(config, data, scaled, diverged_M)
  _check_against_training(config, state, history, _as_trained(config, data, scaled['val'],
                                                              per_member),
                          diverged_M, members is not None)
  if members is None:
    return results, panels, history_frame(history, None)
  active_ME = np.asarray(history['active'], bool)
  best_epoch_M = devices.to_host(state.best_epoch)[:members.size]
  for k, record in enumerate(members.records()):
    per_member[k] = {**record, **per_member[k], 'diverged': bool(diverged_M[k]),
                     'epochs_run': int(active_ME[k].sum()), 'best_epoch': int(best_epoch_M[k])}
  results['members'] = per_member
  results['num_members'] = members.size
  results['diverged_members'] = [int(k) for k in np.flatnonzero(diverged_M)]
  results['ensemble_quantiles'] = [min(config.ensemble_quantiles), max(config.ensemble_quantiles)]
  alive = [m for m, dead in zip(per_member, diverged_M, strict=True) if not dead]
  for key in MEMBER_METRICS + (TEST_MEMBER_METRICS if 'test' in data.parts else ()):
    values_M = np.array([m[key] for m in alive])
    results[f'member_{key}_mean'] = float(values_M.mean())
    results[f'member_{key}_std'] = float(values_M.std(ddof=1)) if len(values_M) > 1 else 0.0
  return results, panels, history_frame(history, diverged_M)


def _as_trained(config, data: dataset_lib.Dataset, scaled_val_MN: np.ndarray,
                per_member: list[dict]) -> list[dict]:
  """`per_member`, or with train.val_windows reading fewer validation windows than there are,
  each member's loss over those windows alone (as 'val_loss_scaled' and 'val_mse_scaled'): what
  its training's val_loss was, for `_check_against_training`.

  Args:
    scaled_val_MN: [M, N_val, S(, Q or 2)] the members' scaled forecasts of data.val_starts.
  """
  read_N = train_data.val_subset(data.val_starts, config.train.val_windows)
  if len(read_N) == len(data.val_starts):
    return per_member
  keep_N = np.isin(data.val_starts, read_N)
  y_NS = jnp.asarray(data.scaled_TF[data.target_positions(read_N), 0], jnp.float32)
  loss_terms = losses.for_model(config.model)
  losses_M = [float(np.mean(loss_terms(jnp.asarray(scaled_NS[keep_N]), y_NS)))
              for scaled_NS in scaled_val_MN]
  return [{'val_loss_scaled': loss, 'val_mse_scaled': loss} for loss in losses_M]


def _check_against_training(config, state, history: dict, per_member: list[dict],
                            diverged_M: np.ndarray, member_axis: bool) -> None:
  """Warns when a member's validation loss here differs from the one its training computed.

  Both are the scaled loss (`rnnjax.losses`; the MSE for the point head) of the reported
  parameters over the validation windows, one from
  the compiled training program, one from the forecasting programs; they differ only by float
  rounding. A larger gap means one program computed something else (a miscompiled program
  has been seen to do so), and the scores written would not be the trained model's.
  """
  if config.train.early_stopping_patience > 0:
    trained_M = np.atleast_1d(devices.to_host(state.best_val_loss))
  else:
    val_ME, active_ME = (np.atleast_2d(np.asarray(history[k])) for k in ('val_loss', 'active'))
    last_M = np.maximum(active_ME.astype(int).sum(axis=1) - 1, 0)
    trained_M = val_ME[np.arange(len(val_ME)), last_M]
  # The head's validation loss: the MSE for the point head. The others' (pinball, NLL) sum
  # terms of either sign, so their rounding is judged on an absolute scale as well.
  atol = 1e-7 if config.model.head == 'point' else 1e-5
  for k, member in enumerate(per_member):
    if diverged_M[k]:
      continue
    here, there = member.get('val_loss_scaled', member['val_mse_scaled']), float(trained_M[k])
    if not np.isclose(here, there, rtol=1e-3, atol=atol):
      who = f'member {k}' if member_axis else 'the model'
      logging.warning('%s: the validation loss of its reported parameters is %.6g when scored, '
                      'but %.6g in training; the forecasts and metrics may not be the trained '
                      'model\'s. Report this with the config and the jax version.', who, here,
                      there)


def warm_up(config, data: dataset_lib.Dataset, trainer: train_lib.Trainer, program) -> None:
  """Prepares the forecasting programs `evaluate` runs, by running them on zeros, on one batch of
  windows of each part.

  `rnnjax.training_loop` calls it in a helper thread while training runs: tracing, lowering and
  compiling (or reading the compilation cache) then overlap the training, which leaves Python's
  lock free. The zero parameters are host arrays of the shapes and dtypes `evaluate` passes,
  so its calls find the programs in JAX's cache.

  Args:
    config, data, trainer: as for `evaluate`.
    program: the run's `rnnjax.program.Program` (its abstract state gives the shapes).
  """
  abstract = train_lib.final_params(program.abstract_state,
                                    config.train.early_stopping_patience > 0)
  members = program.members
  size = () if members is None else (members.size,)  # the saved state has no padding members
  params = jax.tree.map(lambda s: np.zeros(size + s.shape[len(size):], s.dtype), abstract)
  # One batch of each part compiles what forecasting all of them runs: the same batch shape.
  for starts in data.parts.values():
    member_forecasts(config, data, trainer, params, members is not None,
                     starts[:config.train.val_batch_size])


def member_forecasts(config, data: dataset_lib.Dataset, trainer: train_lib.Trainer, params,
                     member_axis: bool, starts: np.ndarray) -> np.ndarray:
  """[M, N, S] scaled forecasts of the windows at `starts` ([M, N, S, Q] or [M, N, S, 2] for a
  probabilistic head); M = 1 for a single run."""
  scaled = prediction.predict_windows(trainer, params, trainer.device_data.series_TF, starts,
                                      config.train.val_batch_size, member_axis=member_axis)
  return scaled if member_axis else scaled[None]


def score(config, data: dataset_lib.Dataset, scaled_MNS: dict,
          diverged_M: np.ndarray) -> tuple[dict, dict, list[dict]]:
  """Scores [M, N, S] scaled forecasts of the training, validation and test windows.

  The reported forecast is that of the members that did not diverge (a single run: its own):
  for the point head their mean, with more than one member their quantile band
  (`ensemble_quantiles`, a spread across seeds) scored too. A probabilistic head's members are
  mixed (see the module docstring); its point errors are those of the mixture's median or mean,
  and the validation windows get `distribution_metrics.distribution_scores`. Scores are over every
  window, step and series (`rnnjax.metrics.forecast_metrics` adds the per-step and per-series
  ones). The test part, when the dataset has one, is scored as validation is, its keys named
  by `rnnjax.metrics.renamed` ('test_rmse', 'test_baseline_persistence_rmse', ...), with
  'test_start': the time of the first test target ('test_per_series' entries hold their own).

  Args:
    config: the run's config (season, ensemble_quantiles, model.head and its levels).
    data: the dataset the windows come from.
    scaled_MNS: {'train': [M, N_train, S], 'val': [M, N_val, S]} forecasts in scaled units,
      and 'test': [M, N_test, S] when the dataset has a test part; with a last axis [..., Q]
      (quantile head) or [..., 2] (gaussian head).
    diverged_M: [M] bool, members left out.

  Returns:
    (metrics, panels for plots.plot_predictions, per-member metrics [M]). The panels draw the
    first series at the last step: {part: (true [N], forecast [N], band or None)}, 'times':
    {part: [N] target times}, 'xlabel' and 'ylabel' (the target's name), 'band_label' saying
    what the band is, and with several steps 'lead': the validation RMSE per step of the
    model and every baseline.
  """
  alive_M = ~np.asarray(diverged_M, bool)
  head, levels = config.model.head, tuple(config.model.quantiles)
  point = head == 'point'
  low_q, high_q = min(config.ensemble_quantiles), max(config.ensemble_quantiles)
  trailing = () if point else ((len(levels),) if head == 'quantile' else (2,))
  loss_terms = losses.for_model(config.model)
  results, panels = {}, {}
  per_member = [dict() for _ in range(len(alive_M))]
  num_steps = len(data.steps)
  linear = linear_baseline.fit_linear(data)  # once: every scored part is held against the same fit
  if not point:
    panels['band_label'] = f'{config.model.interval * 100:g}% central interval'
  elif len(alive_M) > 1:
    panels['band_label'] = (f'Spread across seeds (q{low_q:g}-q{high_q:g}), not a predictive '
                            'interval')
  for part, starts in data.parts.items():
    scaled_M = np.asarray(scaled_MNS[part])
    expected = (len(alive_M), len(starts), num_steps) + trailing
    if scaled_M.shape != expected:
      raise ValueError(f'{part} forecasts have shape {scaled_M.shape}, expected {expected} '
                       f'(members, windows, steps{", " + head + " outputs" if trailing else ""})')
    scores = metrics_lib.ForecastScores(data, config.data.season,
                                        'train' if part == 'train' else 'val', linear)
    means = chunked.Means()
    firsts = []  # the first series' (true, forecast(, band low, band high)) of each chunk
    # Chunk by chunk: the float64 copies below are of CHUNK_WINDOWS windows, whatever the panel.
    for chunk in chunked.window_chunks(len(starts)):
      starts_n = starts[chunk]
      forecast_M = data.unscale_distribution(scaled_M[:, chunk], head, starts_n)
      true_NS = data.targets(starts_n)
      mean_NS = distributions.center(forecast_M[alive_M], head, levels)
      band = None
      if not point:
        band = tuple(np.moveaxis(distributions.quantiles_at(
            forecast_M[alive_M], head, levels, config_lib.interval_bounds(config.model.interval)),
            -1, 0))
      elif len(alive_M) > 1:
        band = (np.quantile(forecast_M[alive_M], low_q, axis=0),
                np.quantile(forecast_M[alive_M], high_q, axis=0))
      scores.add(starts_n, mean_NS)
      first_N = data.series_index(starts_n) == 0
      firsts.append([a[first_N, -1] for a in (true_NS, mean_NS, *(band or ()))])
      scaled_true_NS = data.scaled_TF[data.target_positions(starts_n), 0]
      centers_MNS = forecast_M if point else np.stack(
          [distributions.center(forecast_M[k:k + 1], head, levels) for k in range(len(alive_M))])
      if part == 'val':
        scaled_alive_M = scaled_M[:, chunk][alive_M]
        scaled_mean_NS = (scaled_alive_M.mean(0) if point
                          else distributions.center(scaled_alive_M, head, levels))
        means.add('mse_scaled', (scaled_mean_NS - scaled_true_NS) ** 2)
        if len(alive_M) > 1:
          means.add('spread', centers_MNS[alive_M].std(axis=0))
          if point:
            means.add('coverage', (true_NS >= band[0]) & (true_NS <= band[1]))
      for k in range(len(alive_M)):
        error_NS = centers_MNS[k] - true_NS
        means.add(('squared', k), error_NS ** 2)
        means.add(('absolute', k), np.abs(error_NS))
        if part == 'val':
          scaled_center_NS = (scaled_M[k, chunk] if point
                              else distributions.center(scaled_M[k:k + 1, chunk], head, levels))
          means.add(('mse_scaled', k), (scaled_center_NS - scaled_true_NS) ** 2)
          if not point:  # what training reported as val_loss
            means.add(('loss', k), loss_terms(jnp.asarray(scaled_M[k, chunk]),
                                              jnp.asarray(scaled_true_NS, jnp.float32)))
    part_scores = scores.result()
    if not point and part != 'train':  # the distribution of every window at once
      merge_scores(part_scores, distribution_metrics.distribution_scores(
          data, starts, data.unscale_distribution(scaled_M[alive_M], head, starts), config))
    if part == 'test':
      part_scores = metrics_lib.renamed(part_scores, 'test')
      times = metrics_lib.first_target_times(data, starts)
      results['test_start'] = min(times.values())
      for name, entry in part_scores.get('test_per_series', {}).items():
        entry['test_start'] = times.get(name)
    results.update(part_scores)
    first = [np.concatenate(pieces) for pieces in zip(*firsts)] or [np.zeros(0)] * 2
    panels[part] = (first[0], first[1], tuple(first[2:]) or None)
    panels.setdefault('times', {})[part] = data.timestamps[
        data.target_positions(starts[data.series_index(starts) == 0])[:, -1]]
    if part == 'val':
      results['val_mse_scaled'] = means.mean('mse_scaled')
      if len(alive_M) > 1:
        results['val_spread_mean'] = means.mean('spread')
        if point:
          results['val_band_coverage'] = means.mean('coverage')
    for k, member in enumerate(per_member):
      member[f'{part}_rmse'] = float(np.sqrt(means.mean(('squared', k))))
      member[f'{part}_mae'] = means.mean(('absolute', k))
      if part == 'val':
        member['val_mse_scaled'] = means.mean(('mse_scaled', k))
        if not point:
          member['val_loss_scaled'] = means.mean(('loss', k))
  if 'per_step' in results:
    panels['lead'] = {key: np.array([entry[key] for entry in results['per_step']])
                      for key in ('step', 'val_rmse', 'baseline_persistence_rmse',
                                  'baseline_seasonal_naive_rmse', 'baseline_linear_rmse')}
    panels['lead']['title'] = 'Validation RMSE by lead time' + (
        f' (all {len(data.series_ids)} series)' if len(data.series_ids) > 1 else '')
  panels['ylabel'] = config.data.target or 'value'
  panels['xlabel'] = 'Target time' + (
      f' (the synthetic series, hourly from {config.data.synthetic.start})'
      if config.data.source == 'synthetic' else '')
  label = [f'series {data.series_ids[0]}'] if data.series_ids != ('',) else []
  label += [f'step {data.steps[-1]}'] if num_steps > 1 else []
  panels['label'] = ', '.join(label)
  return results, panels, per_member


def merge_scores(results: dict, scores: dict) -> None:
  """Adds `scores` to `results`, joining their per_step (by position) and per_series (by id)
  entries to the ones already there."""
  for key, value in scores.items():
    if key == 'per_step':
      for entry, more in zip(results['per_step'], value, strict=True):
        entry.update(more)
    elif key == 'per_series':
      for name, more in value.items():
        results['per_series'][name].update(more)
    else:
      results[key] = value


def history_frame(history: dict, diverged_M: np.ndarray | None) -> pd.DataFrame:
  """The table history.csv holds: epoch, loss, val_loss, grad_norm per epoch run.

  grad_norm is the global norm of the gradients before clipping, the mean over the epoch's
  applied batches weighted as the loss (empty for epochs trained before it was recorded).
  A single run (`diverged_M` None) lists the epochs it ran. An ensemble lists every epoch: loss,
  val_loss and grad_norm are means over the members that did not diverge and were still
  training, then one loss/val_loss/grad_norm column triple per member (empty after the member
  stopped).
  """
  keys = ('loss', 'val_loss', 'grad_norm')
  values = {key: np.asarray(history[key]) if key in history
            else np.full(np.shape(history['loss']), np.nan) for key in keys}
  if diverged_M is None:
    frame = pd.DataFrame({'epoch': np.arange(1, len(values['loss']) + 1), **values})
    return frame[np.asarray(history['active'], bool)]
  active_ME = np.asarray(history['active'], bool)
  values = {key: np.where(active_ME, value, np.nan) for key, value in values.items()}
  keep_M1 = ~np.asarray(diverged_M, bool)[:, None]
  columns = {'epoch': np.arange(1, active_ME.shape[1] + 1)}
  with warnings.catch_warnings():  # an epoch no kept member trained: NaN, as intended
    warnings.simplefilter('ignore', category=RuntimeWarning)
    columns.update({key: np.nanmean(np.where(keep_M1, value, np.nan), axis=0)
                    for key, value in values.items()})
  for k in range(active_ME.shape[0]):
    columns.update({f'{key}_member{k}': value[k] for key, value in values.items()})
  return pd.DataFrame(columns)
