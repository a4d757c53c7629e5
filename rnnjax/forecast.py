"""Forecasts from a trained workdir for a new series: every complete window, future included.

`load_run(workdir)` rebuilds the model, its parameters (stacked for an ensemble) and the fitted
scalers from the newest checkpoint; `forecast_frame` forecasts a series with them.
"""
from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pandas as pd

from rnnjax import checkpoint as ckpt_lib
from rnnjax import config as config_lib
from rnnjax import data as data_lib
from rnnjax import models
from rnnjax import train as train_lib
from rnnjax.errors import UserError


@dataclasses.dataclass
class TrainedRun:
  """What forecasting needs from a workdir.

  Attributes:
    config: the run's config.
    params: parameters (with a leading member axis when `members` is set).
    scaler, target_scaler: fitted on the run's training data.
    columns: input columns, the target first.
    members: per-member records of an ensemble, else None.
    predict_jit: `predict(params, series_TF, starts_B) -> [B]` (or [M, B]) scaled forecasts.
    predict_members_jit: the member-vmapped version.
  """
  config: object
  params: object
  scaler: object
  target_scaler: object
  columns: tuple
  members: list | None
  predict_jit: object
  predict_members_jit: object


def load_run(workdir: str, member: int | None = None) -> TrainedRun:
  """Reads the newest usable checkpoint of `workdir` (see rnnjax.checkpoint).

  Args:
    workdir: a workdir written by `rnnjax.run.train_and_evaluate`.
    member: for an ensemble workdir, extract this member as a single model; None keeps the
      whole ensemble (without diverged members).
  """
  state, meta = ckpt_lib.load_for_inference(workdir)
  config = config_lib.from_json(meta['config'])
  early = config.train.early_stopping_patience > 0
  params = state['best_params'] if early else state['params']
  members = meta['members']
  if member is not None:
    if members is None:
      raise UserError(f'{workdir!r} holds a single model, not an ensemble: drop --member.')
    if not 0 <= member < len(members):
      raise UserError(f'--member={member} is out of range: {workdir!r} has members '
                      f'0..{len(members) - 1}.')
    params = jax.tree.map(lambda a: np.asarray(a)[member], params)
    members = None
  elif members is not None:  # diverged members take no part in the ensemble's forecast
    alive = ~np.asarray(state['diverged'], bool)
    params = jax.tree.map(lambda a: np.asarray(a)[alive], params)
  model = models.from_config(config.model)
  predict = train_lib.window_predictor(model, meta['window'], meta['horizon'])
  return TrainedRun(config=config, params=params,
                    scaler=data_lib.scaler_from_state(meta['scaler']),
                    target_scaler=data_lib.scaler_from_state(meta['target_scaler']),
                    columns=tuple(meta['columns']), members=members,
                    predict_jit=jax.jit(predict),
                    predict_members_jit=jax.jit(jax.vmap(predict, in_axes=(0, None, None))))


def _step(times: pd.DatetimeIndex) -> pd.Timedelta:
  """The series' typical spacing (the median gap), used to date targets past its end."""
  return pd.Series(times).diff().median()


def forecast_frame(run: TrainedRun, times: pd.DatetimeIndex, values_TF: np.ndarray,
                   batch_size: int = 4096) -> pd.DataFrame:
  """One row per complete input window of the series.

  Args:
    run: from `load_run`.
    times: [T] timestamps, sorted.
    values_TF: [T, F] raw values in `run.columns` order.

  Returns:
    Columns input_end (time of the last input), target_time (input_end + horizon steps; past the
    series end it is extrapolated at the series' frequency), forecast (original units), actual
    (the observed target, empty past the end); for ensembles also forecast_std and
    forecast_q{low}/forecast_q{high}, the members' quantile band.
  """
  window, horizon = run.config.data.window, run.config.data.horizon
  if len(values_TF) < window:
    raise UserError(f'the series has {len(values_TF)} points, fewer than one window of {window}.')
  scaled = run.scaler.transform(values_TF).astype(np.float32)
  starts = np.arange(len(values_TF) - window + 1, dtype=np.int32)
  scaled_pred = train_lib.predict_windows(run, run.params, scaled, starts, batch_size,
                                          member_axis=run.members is not None)
  pred = run.target_scaler.inverse_transform(scaled_pred.reshape(-1, 1)).reshape(
      scaled_pred.shape)
  target_pos = starts + data_lib.target_offset(window, horizon)
  step = _step(times)
  last = len(times) - 1
  target_time = [times[p] if p <= last else times[last] + (p - last) * step for p in target_pos]
  actual = np.full(len(starts), np.nan)
  known = target_pos <= last
  actual[known] = values_TF[target_pos[known], 0]
  frame = pd.DataFrame({'input_end': times[starts + window - 1], 'target_time': target_time})
  if run.members is None:
    frame['forecast'] = pred
  else:
    low, high = min(run.config.ensemble_quantiles), max(run.config.ensemble_quantiles)
    frame['forecast'] = pred.mean(axis=0)
    frame['forecast_std'] = pred.std(axis=0)
    frame[f'forecast_q{low:g}'] = np.quantile(pred, low, axis=0)
    frame[f'forecast_q{high:g}'] = np.quantile(pred, high, axis=0)
  frame['actual'] = actual
  return frame


def forecast_csv(workdir: str, csv_path: str, out_path: str,
                 member: int | None = None) -> pd.DataFrame:
  """Forecasts the series in `csv_path` with the run in `workdir` and writes `out_path`."""
  run = load_run(workdir, member)
  d = run.config.data
  times, values = data_lib.load_csv(csv_path, d.time_column, run.columns, d.fill)
  frame = forecast_frame(run, times, values, run.config.train.val_batch_size)
  frame.to_csv(out_path, index=False)
  return frame
