"""Forecasts from a trained workdir for a new series: every complete window, future included.

`load_run(workdir)` rebuilds the model, its parameters (stacked for an ensemble) and the fitted
scalers from the newest checkpoint; `forecast_frame` forecasts a series with them;
`forecast_csv` is scripts/predict.py: it checks the paths and that the run finished, reads the CSV
and writes the forecast.
"""
from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import logging
import os
import re
import sys

import jax
import numpy as np
import pandas as pd

from rnnjax import checkpoint as ckpt_lib
from rnnjax import config as config_lib
from rnnjax import distributions
from rnnjax import inputs
from rnnjax import models
from rnnjax import plots
from rnnjax import scaling
from rnnjax import sources
from rnnjax import prediction
from rnnjax import windows
from rnnjax import workdir as workdir_lib
from rnnjax.errors import UserError

# Significant digits of the numbers in a forecast file: float32 forecasts carry about 7.
DIGITS = 6


@dataclasses.dataclass
class TrainedRun:
  """What forecasting needs from a workdir.

  Attributes:
    config: the run's config.
    params: parameters (with a leading member axis when `members` is set).
    scalers: series id -> (scaler, target_scaler), fitted on that series' training data (one
      series: the id '').
    columns: input columns: the target, past-only features, then future features.
    members: per-member records of an ensemble, else None.
    predict_jit: `predict(params, series_TF, starts_B) -> [B, S]` scaled forecasts ([B, S, Q]
      or [B, S, 2] for a probabilistic head).
    predict_members_jit: the member-vmapped version.
    epochs_done: epochs the restored checkpoint holds.
    finished: the run wrote metrics.json; False while it trains or after it was stopped.
    steps: series id -> the time step of its training data (`time_step`); empty, or None for
      a series, in a run saved before steps were recorded.
  """
  config: object
  params: object
  scalers: dict
  columns: tuple
  members: list | None
  predict_jit: object
  predict_members_jit: object
  epochs_done: int = 0
  finished: bool = True
  steps: dict = dataclasses.field(default_factory=dict)


def _is_loop_closed(error: BaseException) -> bool:
  return isinstance(error, RuntimeError) and str(error) == 'Event loop is closed'


def _is_read_only_notice(record: logging.LogRecord) -> bool:
  message = record.getMessage()
  return 'read_only=True' in message or 'directory is read only' in message


@contextlib.contextmanager
def _quiet_restore():
  """Silences Orbax's noise while checkpoints are read; rnnjax's own warnings still show.

  A step that fails to restore leaves TensorStore callbacks calling into Orbax's closed event
  loop (dozens of 'Event loop is closed' tracebacks, reported as unraisable exceptions) and
  unretrieved task errors on the 'asyncio' logger; a read-only manager also warns that it is
  read-only. The one useful line is rnnjax.checkpoint's 'skipping checkpoint ...' warning.
  """
  asyncio_logger, absl_logger = logging.getLogger('asyncio'), logging.getLogger('absl')
  previous_level, previous_hook = asyncio_logger.level, sys.unraisablehook

  def hook(unraisable):
    if not _is_loop_closed(unraisable.exc_value):
      previous_hook(unraisable)

  def keep(record):
    return not _is_read_only_notice(record)

  asyncio_logger.setLevel(logging.CRITICAL + 1)
  absl_logger.addFilter(keep)
  sys.unraisablehook = hook
  try:
    yield
  finally:
    gc.collect()  # failed tasks report 'never retrieved' when collected: do it while silenced
    sys.unraisablehook = previous_hook
    absl_logger.removeFilter(keep)
    asyncio_logger.setLevel(previous_level)


def alive_members(diverged_M, workdir: str) -> np.ndarray:
  """Which members of an ensemble can forecast: those that never diverged.

  Args:
    diverged_M: bool [M], the checkpoint's `diverged` flags.
    workdir: named in the error.

  Returns:
    bool [M], True for members that never diverged.

  Raises:
    UserError: every member diverged.
  """
  alive = ~np.asarray(diverged_M, bool)
  if not alive.any():
    raise UserError(f'every member of the ensemble in {workdir!r} diverged during training '
                    '(non-finite loss), so there is no member to forecast with. Retrain with a '
                    'lower train.learning_rate or with train.clip_norm set (in another --workdir, '
                    'or pass --overwrite).')
  return alive


def load_run(workdir: str, member: int | None = None) -> TrainedRun:
  """Reads the newest usable checkpoint of `workdir` (see rnnjax.checkpoint).

  Args:
    workdir: a workdir written by `rnnjax.run.train_and_evaluate`, finished or not (see
      `TrainedRun.finished`).
    member: for an ensemble workdir, extract this member as a single model; None keeps the
      whole ensemble (without diverged members).

  Raises:
    UserError: no usable checkpoint, a bad `member`, or an ensemble whose members all diverged.
  """
  with _quiet_restore():
    state, meta = ckpt_lib.load_for_inference(workdir)
  kind = json.loads(meta['config']).get(workdir_lib.KIND_KEY)
  if kind is not None:
    raise UserError(f'{workdir!r} holds a {kind} (scripts/{kind}.py), whose members are '
                    'trained on parts of the series: forecast with a workdir of '
                    'scripts/train.py.')
  config = config_lib.from_json(meta['config'])
  early = config.train.early_stopping_patience > 0
  params = state['best_params'] if early else state['params']
  members = meta['members']
  alive = None if members is None else alive_members(state['diverged'], workdir)
  if member is not None:
    if members is None:
      raise UserError(f'{workdir!r} holds a single model, not an ensemble: drop --member.')
    if not 0 <= member < len(members):
      raise UserError(f'--member={member} is out of range: {workdir!r} has members '
                      f'0..{len(members) - 1}.')
    params = jax.tree.map(lambda a: np.asarray(a)[member], params)
    members = None
  elif members is not None:  # diverged members take no part in the ensemble's forecast
    params = jax.tree.map(lambda a: np.asarray(a)[alive], params)
  model = models.from_config(config)
  predict = prediction.window_predictor(model, meta['window'], config_lib.target_steps(config.data),
                                        model.num_known)
  saved = meta.get('series') or [{'id': '', 'scaler': meta['scaler'],
                                  'target_scaler': meta['target_scaler']}]
  scalers = {one['id']: (scaling.scaler_from_state(one['scaler']),
                         scaling.scaler_from_state(one['target_scaler'])) for one in saved}
  return TrainedRun(config=config, params=params, scalers=scalers,
                    columns=tuple(meta['columns']), members=members,
                    predict_jit=jax.jit(predict),
                    predict_members_jit=jax.jit(jax.vmap(predict, in_axes=(0, None, None))),
                    epochs_done=int(meta['epochs_done']),
                    finished=os.path.isfile(os.path.join(workdir, 'metrics.json')),
                    steps={one['id']: one.get('step') for one in saved})


def _step(times: pd.DatetimeIndex) -> pd.Timedelta:
  """The series' typical spacing (the median gap), used to date targets past its end."""
  return pd.Series(times).diff().median()


def time_step(times: pd.DatetimeIndex) -> str | None:
  """The series' time step as a pandas frequency string, for the run's checkpoint to record.

  A fixed step is a duration ('h', '30min', '24h'); a calendar one whose duration varies is
  pandas' inferred frequency ('MS' month starts, 'B' business days).

  Args:
    times: [T] timestamps, sorted and on a regular grid (as `rnnjax.sources` loads them).

  Returns:
    The frequency string; None when T < 2 or no frequency fits the timestamps.
  """
  times = pd.DatetimeIndex(times)
  if len(times) < 2:
    return None
  deltas = times[1:] - times[:-1]
  if (deltas == deltas[0]).all():
    return pd.tseries.frequencies.to_offset(deltas[0]).freqstr
  inferred = pd.DatetimeIndex(times, freq='infer').freq if len(times) >= 3 else None
  return None if inferred is None else inferred.freqstr


def _step_words(step: str) -> str:
  """'1h', '30min', 'MS': a frequency string with its count, as pandas aliases read."""
  offset = pd.tseries.frequencies.to_offset(step)
  return f'{offset.n}{offset.rule_code}' if isinstance(offset, pd.offsets.Tick) else step


def check_step(run: TrainedRun, times: pd.DatetimeIndex, name: str = '',
               source: str = '') -> None:
  """Refuses a series whose time step is not the one the run was trained on at.

  The check passes when the run's step, counted from the series' first timestamp, gives every
  timestamp of the series; a run saved before steps were recorded is not checked.

  Args:
    run: from `load_run`.
    times: [T] timestamps, sorted and on a regular grid.
    name: the series' id: picks its recorded step, and names it in errors.
    source: where the series comes from, to begin the message with (e.g. "--csv='x.csv': ").

  Raises:
    UserError: the series steps by another time step, naming both.
  """
  trained = run.steps.get(name)
  if trained is None or len(times) < 2:
    return
  expected = pd.date_range(times[0], periods=len(times), freq=trained)
  if (expected == times).all():
    return
  found = time_step(times)
  found = 'an irregular step' if found is None else _step_words(found)
  where = f'series {name!r}' if name else 'the series'
  raise UserError(f'{source}{where} steps by {found}, but the run was trained on data that steps '
                  f'by {_step_words(trained)} (pandas frequency aliases): its forecasts would be '
                  f'read at the wrong times. Resample the series to {_step_words(trained)} '
                  '(e.g. pandas\' DataFrame.resample), or forecast it with a run trained on '
                  f'{found} data.')


def forecast_frame(run: TrainedRun, times: pd.DatetimeIndex, values_TF: np.ndarray,
                   batch_size: int = 4096, future: pd.DataFrame | None = None,
                   name: str = '') -> pd.DataFrame:
  """One row per complete input window of the series and target step (long format).

  With data.lags, the first window starts max(lags) points in: its lag inputs read that far back.

  Args:
    run: from `load_run`.
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
      not trained on or at another time step (`check_step`), or a future feature missing at a
      target time past the end.
  """
  d = run.config.data
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
  check_step(run, times, name)
  starts = np.arange(first, len(values_TF) - window + 1, dtype=np.int32)
  target_pos = windows.target_positions(starts, window, steps)
  step = _step(times)
  last = len(times) - 1
  # The timestamps on to the last target: known inputs are known there, values are not.
  ahead = np.arange(1, int(target_pos.max()) - last + 1)
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
  scaled = scaler.transform(np.concatenate([values_TF, rows])).astype(np.float32)
  scaled[len(times):, :values_TF.shape[1] - len(d.future_features)] = 0.0
  # Known lags at a target time read values at or before the last input, never the zeros above.
  series = inputs.model_inputs(scaled, all_times, d.calendar, past_lags + known_lags,
                               len(d.future_features))
  scaled_pred = prediction.predict_windows(run, run.params, series, starts, batch_size,
                                           member_axis=run.members is not None)
  head = run.config.model.head
  pred = scaling.unscale_distribution(scaled_pred, head, target_scaler)
  actual = np.full(target_pos.shape, np.nan)
  observed = target_pos <= last
  actual[observed] = values_TF[target_pos[observed], 0]
  num_steps = len(steps)
  frame = pd.DataFrame({'input_end': times[starts + window - 1].repeat(num_steps),
                        'step': np.tile(steps, len(starts)),
                        'target_time': all_times[target_pos.ravel()]})
  if head != 'point':
    for name, column in distribution_columns(run.config, pred, run.members is not None).items():
      frame[name] = column.ravel()
  elif run.members is None:
    frame['forecast'] = pred.ravel()
  else:
    low, high = min(run.config.ensemble_quantiles), max(run.config.ensemble_quantiles)
    frame['forecast'] = pred.mean(axis=0).ravel()
    frame['forecast_std'] = pred.std(axis=0).ravel()
    frame[f'forecast_q{low:g}'] = np.quantile(pred, low, axis=0).ravel()
    frame[f'forecast_q{high:g}'] = np.quantile(pred, high, axis=0).ravel()
  frame['actual'] = actual.ravel()
  return frame


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
  members = np.asarray(forecast, np.float64)
  members = members if member_axis else members[None]
  lower, upper = np.moveaxis(distributions.quantiles_at(
      members, m.head, levels, config_lib.interval_bounds(m.interval)), -1, 0)
  if m.head == 'quantile':
    q = distributions.quantiles_at(members, m.head, levels, levels)
    columns = {'forecast': q[..., distributions.middle_index(levels)]}
    columns.update({f'q{level:g}': q[..., i] for i, level in enumerate(levels)})
  else:
    mean, scale = distributions.gaussian_mixture_moments(members[..., 0], members[..., 1])
    columns = {'forecast': mean, 'mean': mean, 'scale': scale}
  columns.update(lower=lower, upper=upper)
  return columns


def _same_file(path: str, other: str) -> bool:
  """`path` and `other` name one file, by any spelling or link (neither needs to exist)."""
  return os.path.realpath(path) == os.path.realpath(other) or (
      os.path.exists(path) and os.path.exists(other) and os.path.samefile(path, other))


def _inside(path: str, folder: str) -> bool:
  """`path` is `folder` or lies under it, its links resolved; a link inside `folder` counts
  too, wherever it points, since writing `path` would replace the link."""
  top = os.path.realpath(folder)
  parent = os.path.realpath(os.path.dirname(os.path.abspath(path)))
  return any(os.path.commonpath([top, where]) == top for where in (
      os.path.realpath(path), os.path.join(parent, os.path.basename(path))))


def check_paths(csv_path: str, out_path: str, flag: str = '--out',
                workdir: str | None = None) -> None:
  """Refuses paths scripts/predict.py cannot use, before any work.

  Raises:
    UserError: `csv_path` is not a file; `out_path` (given as `flag`) lies inside `workdir`
      (the run's own files), is a folder, lies in a folder that does not exist or cannot be
      written, or is `csv_path` itself (by any spelling or link).
  """
  if not os.path.isfile(csv_path):
    raise UserError(f'--csv={csv_path!r} does not exist or is not a file.')
  if workdir is not None and _inside(out_path, workdir):
    top = os.path.realpath(workdir)
    example = 'forecast' + ((os.path.splitext(out_path)[1] or '.png') if flag == '--plot'
                            else '.csv')
    raise UserError(f'{flag}={out_path!r} lies inside the run\'s --workdir={workdir!r}, which '
                    'holds the run\'s own files (config.json, metrics.json, history.csv, '
                    'checkpoints/): writing there can replace them. Name a file outside the '
                    f'workdir, e.g. {flag}='
                    f'{os.path.join(os.path.dirname(top), os.path.basename(top) + "_" + example)}.')
  if os.path.isdir(out_path):
    raise UserError(f'{flag}={out_path!r} is a folder; name a file to write, e.g. '
                    f'{flag}={os.path.join(out_path, "forecast.csv")}.')
  folder = os.path.dirname(os.path.abspath(out_path))
  if not os.path.isdir(folder):
    raise UserError(f'{flag}={out_path!r}: the folder {folder!r} does not exist; create it first '
                    f'(mkdir -p {folder}) or name a file in an existing folder.')
  if not os.access(folder, os.W_OK | os.X_OK):
    raise UserError(f'{flag}={out_path!r} cannot be written: the folder {folder!r} is not '
                    'writable.')
  if _same_file(out_path, csv_path):
    raise UserError(f'{flag}={out_path!r} is the input --csv={csv_path!r}: writing it would '
                    f'overwrite the series. Name another file for {flag}.')


def check_plot(plot_path: str, out_path: str) -> None:
  """Refuses a --plot that matplotlib cannot write or that is the --out file, before any work.

  The format is the file's extension, as matplotlib's `savefig` reads it (none: its default,
  PNG); the formats are the ones matplotlib's canvas says it supports.

  Raises:
    UserError: an extension matplotlib cannot write, or `plot_path` names the `out_path` file
      (by any spelling or link).
  """
  from matplotlib.backend_bases import FigureCanvasBase  # pylint: disable=import-outside-toplevel
  supported = FigureCanvasBase.get_supported_filetypes()
  root, extension = os.path.splitext(plot_path)
  if extension[1:] and extension[1:].lower() not in supported:
    raise UserError(f'--plot={plot_path!r}: matplotlib cannot write {extension[1:]!r} figures; '
                    f'it writes {", ".join(sorted(supported))}. End the file name with one of '
                    f'these, e.g. --plot={root}.png.')
  if _same_file(plot_path, out_path):
    raise UserError(f'--plot={plot_path!r} is the --out={out_path!r} file: the figure would '
                    f'replace the forecast. Name another file for --plot, e.g. '
                    f'--plot={os.path.splitext(out_path)[0]}_plot.png.')


def check_finished(run: TrainedRun, workdir: str, allow_unfinished: bool) -> None:
  """Refuses a run that has not finished, or with `allow_unfinished` warns about it.

  Raises:
    UserError: `run.finished` is False and `allow_unfinished` is not set.
  """
  if run.finished:
    return
  state = (f'{workdir!r} holds an unfinished run: its newest usable checkpoint has '
           f'{run.epochs_done} of {run.config.train.epochs} epochs and there is no metrics.json '
           '(the run was stopped, diverged, or is still training)')
  if not allow_unfinished:
    raise UserError(f'{state}. Run the same scripts/train.py command again to resume it, or pass '
                    '--allow_unfinished to forecast with this checkpoint.')
  logging.warning('%s; forecasting with it (--allow_unfinished).', state)


def reading_settings(config) -> dict:
  """How the run read its training CSV (time unit, date order, fill share): --csv is read the
  same way. Runs recorded before a key existed read with its default."""
  d = config.data
  return dict(time_unit=d.get('time_unit', ''), dayfirst=d.get('dayfirst', ''),
              max_fill_fraction=d.get('max_fill_fraction', config_lib.MAX_FILL_FRACTION))


_READING_FLAG = re.compile(r"--config\.data\.(time_unit|dayfirst|max_fill_fraction)=('[^']*'|[\w.]*\w)")


def _for_predict(message: str, columns: list) -> str:
  """A `sources.load_csv` error with its advice in scripts/predict.py's flags."""
  message, settings = _READING_FLAG.subn(r'data.\1=\2', message)
  if settings:
    message += (' predict.py reads --csv with the settings the run was trained with (data.'
                'time_unit, data.dayfirst, data.max_fill_fraction in the workdir\'s config.json): '
                'write the file as the training data was written, or forecast with a run '
                'trained with the setting named above.')
  for config_words, predict_words in (
      ('--config.data.fill', '--fill'), ('data.fill', '--fill'), ('data.path', '--csv'),
      ('Set data.time_column, data.target, data.features, data.future_features and '
       'data.id_column to existing names.', f'The run needs the columns {list(columns)}.'),
      ('Choose other columns or fix the file.', 'Fix the file.')):
    message = message.replace(config_words, predict_words)
  return message


def forecast_csv(workdir: str, csv_path: str, out_path: str, member: int | None = None,
                 fill: str | None = None, allow_unfinished: bool = False,
                 series: str | None = None, plot_path: str | None = None,
                 digits: int = DIGITS) -> pd.DataFrame:
  """Forecasts the series in `csv_path` with the run in `workdir` and writes `out_path`.

  Args:
    workdir, member: as for `load_run`.
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
    UserError: bad paths (`check_paths`, `check_plot`) or digits (`check_digits`), an
      unfinished run, a CSV that does not load, a series the run does not know or at another
      time step than the run's (`check_step`), or anything `load_run` refuses; messages name
      scripts/predict.py's flags.
  """
  check_digits(digits)
  check_paths(csv_path, out_path, workdir=workdir)
  if plot_path is not None:
    check_paths(csv_path, plot_path, '--plot', workdir)
    check_plot(plot_path, out_path)
  run = load_run(workdir, member)
  check_finished(run, workdir, allow_unfinished)
  d = run.config.data
  if series is not None and not d.id_column:
    raise UserError(f'--series={series!r}: the run in {workdir!r} was trained on one series '
                    '(no data.id_column); drop --series.')
  try:
    loaded = sources.load_series(csv_path, d.time_column, run.columns,
                                  d.fill if fill is None else fill, d.id_column,
                                  tuple(d.future_features), **reading_settings(run.config))
  except UserError as e:
    needed = [d.time_column, *([d.id_column] if d.id_column else []), *run.columns]
    raise UserError(_for_predict(str(e), needed)) from None
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
    check_step(run, one.times, one.name, f'--csv={csv_path!r}: ')
  frames = []
  for one in loaded:
    frame = forecast_frame(run, one.times, one.values_TF, run.config.train.val_batch_size,
                           one.future, one.name)
    if d.id_column:
      frame.insert(0, 'series', one.name)
    frames.append(frame)
  frame = pd.concat(frames, ignore_index=True)
  workdir_lib.atomic_write(out_path, lambda path: write_csv(frame, path, digits))
  if plot_path is not None:
    interval = run.config.model.interval if run.config.model.head != 'point' else None
    workdir_lib.atomic_write(plot_path, lambda path: plots.plot_forecast(
        frames[0], path, plot_title(workdir, d.target, loaded[0].name), interval=interval,
        ylabel=d.target or 'value'))
  return frame



def check_digits(digits: int, flag: str = '--digits') -> None:
  """Raises UserError unless 1 <= digits <= 17 (17 writes every float64 exactly)."""
  if isinstance(digits, bool) or not isinstance(digits, int) or not 1 <= digits <= 17:
    raise UserError(f'{flag}={digits!r}: give the significant digits of each number written, a '
                    f'whole number from 1 to 17 (default {DIGITS}; 17 writes every value '
                    'exactly).')


def write_csv(frame: pd.DataFrame, path: str, digits: int = DIGITS) -> None:
  """`frame` to `path` without its index, every float with `digits` significant digits."""
  frame.to_csv(path, index=False, float_format=f'%.{digits}g')


def plot_title(workdir: str, target: str, series: str = '') -> str:
  """"Forecast of temperature by the run 'seed_gru'" (the workdir's name), with the series of a
  run on several."""
  run_name = os.path.basename(os.path.normpath(os.path.abspath(workdir)))
  what = f'{target or "value"}' + (f' of series {series!r}' if series else '')
  return f'Forecast of {what} by the run {run_name!r}'
