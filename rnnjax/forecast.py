"""Forecasts from a trained workdir for a new series: every complete window, future included.

`forecast_frame` forecasts a series with a run from `rnnjax.trained_run.load_run`, in the
series' units, with a probabilistic head's distribution (`distribution_columns`);
`forecast_csv` is scripts/predict.py: it checks the paths and that the run finished
(`rnnjax.predict_checks`), reads the CSV and writes the forecast (`write_csv`) and its figure.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Sequence

import numpy as np
import pandas as pd

from rnnjax import config as config_lib
from rnnjax import distributions
from rnnjax import host_memory
from rnnjax import inputs
from rnnjax import plots
from rnnjax import predict_checks
from rnnjax import prediction
from rnnjax import scaling
from rnnjax import sources
from rnnjax import trained_run
from rnnjax import windows
from rnnjax import workdir as workdir_lib
from rnnjax.errors import UserError


def _step(times: pd.DatetimeIndex) -> pd.Timedelta:
  """The series' typical spacing (the median gap), used to date targets past its end."""
  return pd.Series(times).diff().median()


def forecast_frame(run: trained_run.TrainedRun, times: pd.DatetimeIndex, values_TF: np.ndarray,
                   batch_size: int = 4096, future: pd.DataFrame | None = None,
                   name: str = '') -> pd.DataFrame:
  """One row per complete input window of the series and target step (long format).

  With data.lags, the first window starts max(lags) points in: its lag inputs read that far back.

  Args:
    run: from `rnnjax.trained_run.load_run`.
    times: [T] timestamps, sorted.
    values_TF: [T, F] raw values in `run.columns` order.
    batch_size: windows per compiled call.
    future: the run's future features at timestamps after the series' end (rows with an empty
      target, `rnnjax.sources.Series.future`); needed when the run has data.future_features.
    name: the series' id: picks its scalers, and names it in errors.

  Returns:
    Columns input_end (time of the last input), step (steps after it), target_time (past the
    series end it is extrapolated at the series' frequency), forecast (original units), actual
    (the observed target, empty past the end); for point ensembles also forecast_std and
    forecast_q{low}/forecast_q{high}, the members' quantile band (a spread across seeds). A
    probabilistic head adds its distribution after forecast (`distribution_columns`).

  Raises:
    UserError: fewer points than a window (after the run's longest lag), a series the run was
      not trained on or at another time step (`trained_run.check_step`), or a future feature
      missing at a target time past the end.
  """
  one = sources.Series(name, pd.DatetimeIndex(times), np.asarray(values_TF),
                       pd.DataFrame() if future is None else future)
  return forecast_series(run, [one], batch_size)


def forecast_series(run: trained_run.TrainedRun, series: Sequence[sources.Series],
                    batch_size: int = 4096, id_column: str = '') -> pd.DataFrame:
  """`forecast_frame` of several series at once, their rows one series after another.

  The series' model inputs lie end to end in one array, as in training, and every window of
  every series is forecast in one batched pass (`prediction.predict_windows`): one compiled
  program whatever the series' lengths, and no Python step per window.

  Args:
    run: from `rnnjax.trained_run.load_run`.
    series: each with its id (which picks its scalers), timestamps, raw values in
      `run.columns` order and future rows (`rnnjax.sources.Series`).
    batch_size: windows per compiled call.
    id_column: when given, a first column of that name holds each row's series id.

  Returns:
    `forecast_frame`'s columns, the series' rows in the order given.

  Raises:
    UserError: as `forecast_frame`, for the first series that fails.
  """
  d = run.config.data
  window, steps = d.window, np.array(config_lib.target_steps(d))
  member_axis = run.members is not None
  # Every series' inputs, and the rows past its end its last targets reach, in one array
  # filled series by series: no series' inputs are held twice.
  rows = sum(len(one.values_TF) + int(steps.max()) for one in series)
  series_TF, offset, kept, starts = None, 0, [], []
  for one in series:
    one_TF, one_kept = _model_inputs(run, one)
    if series_TF is None:
      series_TF = np.empty((rows, one_TF.shape[1]), one_TF.dtype)
    series_TF[offset:offset + len(one_TF)] = one_TF
    starts.append(one_kept.starts_N + offset)
    kept.append(one_kept)
    offset += len(one_TF)
  scaled_pred = prediction.predict_windows(run, run.params, series_TF, np.concatenate(starts),
                                           batch_size, member_axis=member_axis)
  del series_TF, starts
  head = run.config.model.head
  members = (slice(None),) if member_axis else ()  # the axes before the windows'
  pred = np.empty(scaled_pred.shape, np.float64)
  bounds = np.cumsum([0] + [len(one.starts_N) for one in kept])
  for one, lo, hi in zip(kept, bounds[:-1], bounds[1:]):  # each series by its own scaler
    windows_of = members + (slice(lo, hi),)
    pred[windows_of] = scaling.unscale_distribution(scaled_pred[windows_of], head,
                                                    one.target_scaler)
  del scaled_pred
  num_steps = len(steps)
  join = lambda pieces: pieces[0].append(pieces[1:])  # noqa: E731  times, zones kept
  frame = pd.DataFrame({
      'input_end': join([one.times[one.starts_N + window - 1] for one in kept]).repeat(num_steps),
      'step': np.tile(steps, int(bounds[-1]))})
  frame['target_time'] = join([one.times.append(one.future_times)[
      windows.target_positions(one.starts_N, window, steps).ravel()] for one in kept])
  if id_column:
    names = np.array([one.name for one in series], dtype=object)
    frame.insert(0, id_column, np.repeat(names, np.diff(bounds) * num_steps))
  if head != 'point':
    for name, column in distribution_columns(run.config, pred, member_axis).items():
      frame[name] = column.ravel()
  elif not member_axis:
    frame['forecast'] = pred.ravel()
  else:
    low, high = min(run.config.ensemble_quantiles), max(run.config.ensemble_quantiles)
    frame['forecast'] = pred.mean(axis=0).ravel()
    frame['forecast_std'] = pred.std(axis=0).ravel()
    frame[f'forecast_q{low:g}'] = np.quantile(pred, low, axis=0).ravel()
    frame[f'forecast_q{high:g}'] = np.quantile(pred, high, axis=0).ravel()
  del pred
  frame['actual'] = np.concatenate([_observed(one, window, steps).ravel() for one in kept])
  return frame


@dataclasses.dataclass(frozen=True)
class _Kept:
  """What `forecast_series` keeps of one series while all are forecast (`_model_inputs`).

  Attributes:
    starts_N: int32 [N] the start of every complete window in the series' inputs.
    times: [T] its observed timestamps.
    future_times: the timestamps after them, on to its last target.
    target_T: [T] its raw target values.
    target_scaler: its target scaler.
  """
  starts_N: np.ndarray
  times: pd.DatetimeIndex
  future_times: pd.DatetimeIndex
  target_T: np.ndarray
  target_scaler: object


def _observed(one: _Kept, window: int, steps: np.ndarray) -> np.ndarray:
  """[N, S] the observed target of each window and step, NaN past the end."""
  target_pos_NS = windows.target_positions(one.starts_N, window, steps)
  actual_NS = np.full(target_pos_NS.shape, np.nan)
  observed_NS = target_pos_NS < len(one.target_T)
  actual_NS[observed_NS] = one.target_T[target_pos_NS[observed_NS]]
  return actual_NS


def _model_inputs(run: trained_run.TrainedRun, one: sources.Series) -> tuple[np.ndarray, _Kept]:
  """The checks of `forecast_frame`, then one series' model inputs: float32 [T', F'], the
  scaled series, its rows past the end on to its last target (zeros but the future features),
  then its lag and calendar columns; and what `forecast_series` keeps of it."""
  d = run.config.data
  times, values_TF, future, name = one.times, one.values_TF, one.future, one.name
  window, steps = d.window, np.array(config_lib.target_steps(d))
  past_lags, known_lags = config_lib.split_lags(d.lags, steps)
  first = max(d.lags, default=0)  # the lags reach this far back before a window's first input
  where = f'series {name!r}' if name else 'the series'
  if name not in run.scalers:
    raise UserError(f'{where} was not in the run\'s training data, so it has no fitted scaler; '
                    f'the run knows the series {sorted(run.scalers)}.')
  scaler, target_scaler = run.scalers[name]
  if len(values_TF) < window + first:
    if not first:
      raise UserError(f'{where} has {len(values_TF)} points, fewer than one window of {window}.')
    raise UserError(f'{where} has {len(values_TF)} points, fewer than one window of {window} '
                    f'after the {first} points before it that the run\'s lags '
                    f'(data.lags={tuple(d.lags)}) read: give at least {window + first} points, '
                    'the last ones before the forecast.')
  trained_run.check_step(run, times, name)
  starts_N = np.arange(first, len(values_TF) - window + 1, dtype=np.int32)
  target_pos_NS = windows.target_positions(starts_N, window, steps)
  step = _step(times)
  last = len(times) - 1
  # The timestamps on to the last target: known inputs are known there, values are not.
  ahead = np.arange(1, int(target_pos_NS.max()) - last + 1)
  future_times = times[last] + pd.TimedeltaIndex(ahead * step)
  all_times = times.append(future_times)
  rows = np.full((len(ahead), values_TF.shape[1]), np.nan)
  if d.future_features and len(ahead):
    known = (future if future is not None else pd.DataFrame()).reindex(
        columns=list(d.future_features)).reindex(future_times)
    gaps = known.isna().any(axis=1).to_numpy()
    if gaps.any():
      raise UserError(f'{where}: the future features {list(d.future_features)} are missing at '
                      f'{future_times[gaps][0]} ({gaps.sum()} of the {len(ahead)} target times '
                      'after the last value). Add rows with those timestamps, an empty target '
                      'and the future features to the CSV.')
    rows[:, -len(d.future_features):] = known.to_numpy()
  scaled_TF = scaler.transform(np.concatenate([values_TF, rows])).astype(np.float32)
  scaled_TF[len(times):, :values_TF.shape[1] - len(d.future_features)] = 0.0
  # Known lags at a target time read values at or before the last input, never the zeros above.
  series_TF = inputs.model_inputs(scaled_TF, all_times, d.calendar, past_lags + known_lags,
                                  len(d.future_features))
  return series_TF, _Kept(starts_N=starts_N, times=times, future_times=future_times,
                          target_T=values_TF[:, 0], target_scaler=target_scaler)


def distribution_columns(config, forecast, member_axis: bool) -> dict:
  """The forecast file's columns of a probabilistic head's distribution, series units.

  quantile head: forecast (the median, or the level nearest 0.5), one column q{level} per
  level of model.quantiles (q0.1, q0.5, q0.9), then lower and upper, the central
  model.interval interval. gaussian head: forecast (the mean), mean and scale, lower, upper.
  An ensemble's distribution is the equal-weight mixture of its members': its quantiles
  (`rnnjax.distributions.quantiles_at`), or for normals the mixture's mean and standard
  deviation as mean and scale and its quantiles as lower and upper.

  Args:
    config: the run's config (model.head, model.quantiles, model.interval).
    forecast: [N, S, Q] or [N, S, 2] in series units; [M, N, S, ...] with `member_axis`.
    member_axis: `forecast` holds the members of an ensemble.

  Returns:
    {column name: [N, S] array}, in column order.
  """
  m = config.model
  levels = tuple(m.quantiles)
  members_M = np.asarray(forecast, np.float64)
  members_M = members_M if member_axis else members_M[None]
  lower_NS, upper_NS = np.moveaxis(distributions.quantiles_at(
      members_M, m.head, levels, config_lib.interval_bounds(m.interval)), -1, 0)
  if m.head == 'quantile':
    q_NSQ = distributions.quantiles_at(members_M, m.head, levels, levels)
    columns = {'forecast': q_NSQ[..., distributions.middle_index(levels)]}
    columns.update({f'q{level:g}': q_NSQ[..., i] for i, level in enumerate(levels)})
  else:
    mean_NS, scale_NS = distributions.gaussian_mixture_moments(members_M[..., 0],
                                                               members_M[..., 1])
    columns = {'forecast': mean_NS, 'mean': mean_NS, 'scale': scale_NS}
  columns.update(lower=lower_NS, upper=upper_NS)
  return columns


def forecast_csv(workdir: str, csv_path: str, out_path: str, member: int | None = None,
                 fill: str | None = None, allow_unfinished: bool = False,
                 series: str | None = None, plot_path: str | None = None,
                 digits: int = predict_checks.DIGITS) -> pd.DataFrame:
  """Forecasts the series in `csv_path` with the run in `workdir` and writes `out_path`.

  Args:
    workdir, member: as for `rnnjax.trained_run.load_run`.
    csv_path: the run's time column and value columns (and id column, for a run on several
      series); rows after a series' last target that hold only future features give the
      known inputs of forecasts past the data.
    out_path: CSV file to write (replaced whole, or left as it was on failure).
    fill: missing values and timestamps, as `sources.load_csv`; None is the run's data.fill.
    allow_unfinished: forecast with a run that has not finished, with a warning.
    series: forecast only this series of a long-format file.
    plot_path: also draw the forecast of one series (`series`, else the first) to this figure,
      in the format its extension names (`rnnjax.plots.plot_forecast`).
    digits: significant digits of each number written (`write_csv`).

  Returns:
    The rows written: `forecast_frame`'s columns, after a first column `series` when the run
    has data.id_column.

  Raises:
    UserError: bad paths (`predict_checks.check_paths`, `check_plot`) or digits
      (`check_digits`), an unfinished run, a CSV that does not load, a series the run does not
      know or at another time step than the run's (`trained_run.check_step`), or anything
      `trained_run.load_run` refuses; messages name scripts/predict.py's flags.
  """
  predict_checks.check_digits(digits)
  predict_checks.check_paths(csv_path, out_path, workdir=workdir)
  if plot_path is not None:
    predict_checks.check_paths(csv_path, plot_path, '--plot', workdir)
    predict_checks.check_plot(plot_path, out_path)
  run = trained_run.load_run(workdir, member)
  predict_checks.check_finished(run, workdir, allow_unfinished)
  d = run.config.data
  if series is not None and not d.id_column:
    raise UserError(f'--series={series!r}: the run in {workdir!r} was trained on one series '
                    '(no data.id_column); drop --series.')
  try:
    loaded = sources.load_series(csv_path, d.time_column, run.columns,
                                  d.fill if fill is None else fill, d.id_column,
                                  tuple(d.future_features),
                                  **predict_checks.reading_settings(run.config))
  except UserError as e:
    needed = [d.time_column, *([d.id_column] if d.id_column else []), *run.columns]
    raise UserError(predict_checks.for_predict(str(e), needed)) from None
  host_memory.release_freed()  # what reading the file freed
  if series is not None:
    loaded = [one for one in loaded if one.name == series]
    if not loaded:
      raise UserError(f'--series={series!r} is not in {csv_path!r} (column {d.id_column!r}).')
  unknown = [one.name for one in loaded if one.name not in run.scalers]
  if unknown:
    logging.warning('%s: the series %s were not in the run\'s training data (or were too short '
                    'for it), so they have no fitted scaler; they are not forecast.', csv_path,
                    unknown)
    loaded = [one for one in loaded if one.name in run.scalers]
    if not loaded:
      raise UserError(f'no series of {csv_path!r} was in the run\'s training data; the run knows '
                      f'the series {sorted(run.scalers)}.')
  for one in loaded:  # every series, before any is forecast
    trained_run.check_step(run, one.times, one.name, f'--csv={csv_path!r}: ')
  frame = forecast_series(run, loaded, run.config.train.val_batch_size,
                          'series' if d.id_column else '')
  workdir_lib.atomic_write(out_path, lambda path: write_csv(frame, path, digits))
  if plot_path is not None:
    interval = run.config.model.interval if run.config.model.head != 'point' else None
    first = frame if not d.id_column else frame[frame['series'] == loaded[0].name].drop(
        columns='series').reset_index(drop=True)
    workdir_lib.atomic_write(plot_path, lambda path: plots.plot_forecast(
        first, path, plot_title(workdir, d.target, loaded[0].name), interval=interval,
        ylabel=d.target or 'value'))
  return frame


def write_csv(frame: pd.DataFrame, path: str,
              digits: int = predict_checks.DIGITS) -> None:
  """`frame` to `path` without its index, every float with `digits` significant digits."""
  frame.to_csv(path, index=False, float_format=f'%.{digits}g')


def plot_title(workdir: str, target: str, series: str = '') -> str:
  """"Forecast of temperature by the run 'seed_gru'" (the workdir's name), with the series of a
  run on several."""
  run_name = os.path.basename(os.path.normpath(os.path.abspath(workdir)))
  what = f'{target or "value"}' + (f' of series {series!r}' if series else '')
  return f'Forecast of {what} by the run {run_name!r}'
