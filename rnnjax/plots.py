"""The tutorial's figures: the loss per epoch, and observed vs forecast values in the series' own
units against the target time.

Matplotlib is imported when a figure is first drawn, through `pyplot()`: its import takes a
while (docs/benchmarks.md), and `rnnjax.training_loop` calls it in the background while
training runs. The Agg backend writes files and never needs a display.
"""
from __future__ import annotations

import functools

import numpy as np
import pandas as pd


@functools.cache
def pyplot():
  """matplotlib.pyplot on the Agg backend (files only), imported on first use."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  return plt


def _save(fig, path: str) -> None:
  """Writes `fig` to `path` and closes it, also when the write fails (a full disk): pyplot keeps
  every figure it made until it is closed."""
  try:
    fig.savefig(path)
  finally:
    pyplot().close(fig)


def plot_loss(history: dict, path: str, ylabel: str = 'MSE (scaled)') -> None:
  """loss and val_loss per epoch; `history` holds [E] arrays (or [M, E] members); `ylabel`
  names the loss (`rnnjax.losses.NAMES`)."""
  plt = pyplot()
  fig, ax = plt.subplots(figsize=(6, 4))
  fig.subplots_adjust(left=0.14, right=0.97, bottom=0.12, top=0.92)  # no second draw to fit
  for key, label in (('loss', 'Loss'), ('val_loss', 'Val loss')):
    curve_ME = np.atleast_2d(np.asarray(history[key], np.float64))
    epochs_E = np.arange(1, curve_ME.shape[1] + 1)
    mean_E = np.nanmean(curve_ME, axis=0)
    line, = ax.plot(epochs_E, mean_E, label=f'{label}: {mean_E[-1]:.4f}')
    if curve_ME.shape[0] > 1:
      ax.fill_between(epochs_E, np.nanmin(curve_ME, 0), np.nanmax(curve_ME, 0), alpha=0.2,
                      color=line.get_color())
  ax.set(title='Loss per epoch', xlabel='Epoch', ylabel=ylabel)
  ax.legend(loc='upper right')
  _save(fig, path)


# Targets a panel of a whole part draws at most: more is a band, not a line (its last ones).
MOST_TARGETS = 1000


def _time_axis(ax) -> None:
  """Dates on the x axis as matplotlib's concise formatter writes them ('Jun', '03', '12:00'),
  where the axis holds times."""
  import matplotlib.dates as mdates  # pylint: disable=import-outside-toplevel
  locator = mdates.AutoDateLocator()
  ax.xaxis.set_major_locator(locator)
  ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _is_time(x) -> bool:
  return np.issubdtype(np.asarray(x).dtype, np.datetime64)


def _span(x) -> str:
  """', 2025-06-10 10:00 to 2025-07-19 23:00' for times (without the hours when both are
  midnights), '' for anything else."""
  if not _is_time(x) or not len(x):
    return ''
  first, last = pd.Timestamp(x[0]), pd.Timestamp(x[-1])
  dates = first == first.normalize() and last == last.normalize()  # daily or longer steps
  form = '%Y-%m-%d' if dates else '%Y-%m-%d %H:%M'
  return f', {first.strftime(form)} to {last.strftime(form)}'


def plot_predictions(panels: dict, path: str, last: int = 500) -> None:
  """Observed vs forecast against the target time: the last `last` training targets, every
  validation target (at most MOST_TARGETS, the last ones), the last `last` of them when there are
  more, then every test target (when there is a test part); with several target steps, a last
  panel of the validation RMSE against the lead time. Each title says which targets it shows.

  Args:
    panels: {'train': (real [N], pred [N], band or None), 'val': (...)}, and 'test': (...)
      with a test part; a band is (low [N], high [N]) in original units: a probabilistic
      head's central interval, or the spread of a point ensemble's members. Optional: 'times',
      {part: [N] target times (or any x values)}, else the window's index; 'xlabel' and
      'ylabel', the axes' names (the target column's name); 'band_label', what the band is
      (e.g. '80% central interval'); 'label', what the panels show (e.g. 'series a, step 24');
      'lead', {'step', 'val_rmse', 'baseline_persistence_rmse',
      'baseline_seasonal_naive_rmse', 'baseline_linear_rmse'}: [S] arrays, and 'title'.
    path: PNG to write.
    last: targets in the zoomed panels.
  """
  plt = pyplot()
  lead = panels.get('lead')
  specs = [('train', 'Training', last), ('val', 'Validation', MOST_TARGETS)]
  if len(panels['val'][0]) > last:
    specs.append(('val', 'Validation', last))
  if 'test' in panels:
    specs.append(('test', 'Test (scored once, after every choice)', MOST_TARGETS))
  rows = len(specs) + (lead is not None)
  # A screen's height for four panels; the legend has a fixed corner (matplotlib's 'best' place
  # tests every drawn point) and the margins are fixed (tight_layout draws the figure twice).
  height = 3.5 * rows
  fig, axes = plt.subplots(rows, 1, figsize=(12, height), squeeze=False)
  axes = axes[:, 0]
  # Margins in inches, whatever the number of panels: room for the labels and the title.
  fig.subplots_adjust(left=0.06, right=0.98, bottom=0.6 / height, top=1 - 0.35 / height,
                      hspace=0.45)
  label = panels.get('label')
  suffix = f' ({label})' if label else ''
  times = panels.get('times', {})
  xlabel, ylabel = panels.get('xlabel', 'Window'), panels.get('ylabel', 'Value')
  for ax, (part, name, most) in zip(axes[:len(specs)], specs, strict=True):
    real_N, pred_N, band = panels[part]
    n = len(real_N)
    shown = min(most, n)
    x_N = np.asarray(times[part]) if part in times else np.arange(n)
    x_N, real_N, pred_N = x_N[-shown:], real_N[-shown:], pred_N[-shown:]
    band = None if band is None else (band[0][-shown:], band[1][-shown:])
    which = f'all {n:,} targets' if shown == n else f'the last {shown:,} of {n:,} targets'
    ax.plot(x_N, real_N, label='Observed')
    ax.plot(x_N, pred_N, label='Forecast')
    if band is not None:
      ax.fill_between(x_N, band[0], band[1], alpha=0.3, color='C1',
                      label=panels.get('band_label', 'Band'))
    ax.set(title=f'{name}: {which}{_span(x_N)}{suffix}', xlabel=xlabel, ylabel=ylabel)
    ax.set_xlim(x_N[0], x_N[-1])
    if _is_time(x_N):
      _time_axis(ax)
    ax.legend(loc='upper left')
  if lead is not None:
    ax = axes[-1]
    for key, name, style in (('val_rmse', 'Model', 'o-'),
                             ('baseline_persistence_rmse', 'Persistence', 's--'),
                             ('baseline_seasonal_naive_rmse', 'Seasonal naive', '^--'),
                             ('baseline_linear_rmse', 'Linear ridge', 'd--')):
      ax.plot(lead['step'], lead[key], style, label=name, markersize=3)
    ax.set(title=lead['title'], xlabel='Steps ahead', ylabel=f'RMSE of {ylabel}')
    ax.legend(loc='upper left')
  _save(fig, path)


def _interval_columns(frame) -> tuple[str, str, str | None] | None:
  """(low, high, what they are or None) of a forecast frame's interval: lower and upper (a
  probabilistic head), or a point ensemble's forecast_q columns (a spread across seeds)."""
  if 'lower' in frame and 'upper' in frame:
    return 'lower', 'upper', None
  spread = sorted(c for c in frame.columns if c.startswith('forecast_q'))
  if len(spread) == 2:
    return spread[0], spread[1], (f'Spread across seeds ({spread[0][9:]}-{spread[1][9:]}), not '
                                  'a predictive interval')
  return None


def past_the_data(frame):
  """The rows of a forecast frame whose target time lies after its last observed value, each
  target time once: its forecast from the latest window (the last window's every step for a
  multi-step run; for a single-step run, each of the last windows reaches one time)."""
  observed = frame['target_time'][frame['actual'].notna()]
  end = observed.max() if len(observed) else frame['input_end'].max()
  future = frame[frame['target_time'] > end].sort_values('input_end', kind='stable')
  return future.groupby('target_time', sort=True).tail(1).sort_values('target_time')


def plot_forecast(frame, path: str, title: str, last: int = 500,
                  interval: float | None = None, ylabel: str = 'Value') -> None:
  """scripts/predict.py's figure of one series' forecast (the rows `forecast_frame` returns).

  Top: the observed values and the forecast at the longest lead over the last `last` observed
  target times, then the forecast past the data (`past_the_data`) as markers joined by a line,
  with error bars of its interval; a dotted line marks the last observation. Middle: the same,
  zoomed on the end (four times as many observed targets as there are forecasts past the data,
  at least 48), where even a single step's forecast stands out. Bottom (with several steps): the
  RMSE at each lead over the rows whose target was observed.

  Args:
    frame: rows of one series with input_end, step, target_time, forecast, actual; with
      lower and upper (a probabilistic head) the central interval is drawn as a band and error
      bars, as is a point ensemble's spread across seeds (its two forecast_q columns).
    path: PNG to write.
    title: names the series and the run.
    last: observed target times in the top panel.
    interval: the interval's nominal level, for its label.
    ylabel: what the values are (the target column's name).
  """
  plt = pyplot()
  steps = np.unique(frame['step'])
  longest = frame[(frame['step'] == steps[-1]) & frame['actual'].notna()].tail(last)
  future = past_the_data(frame)
  observed = frame['target_time'][frame['actual'].notna()]
  end = observed.max() if len(observed) else None
  columns = _interval_columns(frame)
  if columns is not None:
    low, high, said = columns
    said = said or (f'{interval * 100:g}% central interval' if interval else 'Central interval')
  rows = 2 + (len(steps) > 1)
  height = 3.8 * rows
  fig, axes = plt.subplots(rows, 1, figsize=(12, height), squeeze=False)
  axes = axes[:, 0]
  fig.subplots_adjust(left=0.07, right=0.98, bottom=0.6 / height, top=1 - 0.65 / height,
                      hspace=0.45)
  fig.suptitle(title)
  zoom = min(max(4 * len(future), 48), len(longest))
  ahead = f'Forecast {steps[-1]} step{"s" if steps[-1] != 1 else ""} ahead'
  for ax, shown, name in (
      (axes[0], longest, f'The last {len(longest):,} observed targets and the forecast past them'),
      (axes[1], longest.tail(zoom), f'The end: the last {zoom:,} observed targets and the '
                                    'forecast past them')):
    ax.plot(shown['target_time'], shown['actual'], label='Observed')
    ax.plot(shown['target_time'], shown['forecast'], label=ahead)
    if columns is not None:
      ax.fill_between(shown['target_time'], shown[low], shown[high], alpha=0.2, color='C1',
                      label=said)
    if len(future):
      errors = None if columns is None else np.vstack(
          [future['forecast'] - future[low], future[high] - future['forecast']])
      ax.errorbar(future['target_time'], future['forecast'], yerr=errors, fmt='o-', color='C3',
                  markersize=10 if len(future) == 1 else 6, capsize=4,
                  label='Forecast past the data' + ('' if errors is None else
                                                    ', its bars as the band'))
    if end is not None:
      ax.axvline(end, color='gray', ls=':', lw=1, label='Last observation')
    ax.set(title=name, xlabel='Target time', ylabel=ylabel)
    if _is_time(shown['target_time']):
      _time_axis(ax)
    ax.legend(loc='upper left', fontsize='small')
  if len(steps) > 1:
    known = frame[frame['actual'].notna()]
    squared = ((known['forecast'] - known['actual']) ** 2).groupby(known['step']).mean()
    axes[-1].plot(squared.index, np.sqrt(squared.to_numpy()), 'o-', markersize=3)
    axes[-1].set(title='RMSE by lead time over the observed targets', xlabel='Steps ahead',
                 ylabel=f'RMSE of {ylabel}')
  _save(fig, path)


def plot_backtest(folds: list[dict], path: str) -> None:
  """Test RMSE per backtest fold: the members' mean forecast, each member, and every baseline.

  Args:
    folds: backtest.json's 'folds' (each with 'fold', and for a scored fold 'rmse',
      'members_rmse', 'baseline_persistence_rmse', 'baseline_seasonal_naive_rmse',
      'baseline_linear_rmse').
    path: PNG to write.
  """
  plt = pyplot()
  scored = [f for f in folds if 'rmse' in f]
  distribution = bool(scored) and 'crps' in scored[0]
  fig, axes = plt.subplots(2 if distribution else 1, 1, figsize=(8, 8 if distribution else 4.5),
                           squeeze=False)
  fig.subplots_adjust(left=0.1, right=0.97, bottom=0.08, top=0.94, hspace=0.35)
  ax = axes[0, 0]
  x = np.array([f['fold'] for f in scored])
  for key, label, style in (('rmse', 'model (mean of members)', 'o-'),
                            ('baseline_persistence_rmse', 'persistence', 's--'),
                            ('baseline_seasonal_naive_rmse', 'seasonal naive', '^--'),
                            ('baseline_linear_rmse', 'linear ridge', 'd--')):
    values = np.array([f[key] for f in scored], float)
    ax.plot(x, values, style, label=f'{label}: mean {np.mean(values):.4g}')
  for f in scored:
    each = [v for v in f.get('members_rmse', []) if v is not None]
    if len(each) > 1:
      ax.plot([f['fold']] * len(each), each, '.', color='gray', alpha=0.6)
  ax.set(title='Backtest: test RMSE by fold (series units; gray: each member)',
         xlabel='Fold (later origins to the right)', ylabel='RMSE')
  ax.set_xticks(x)
  ax.legend(loc='upper left')
  if distribution:
    ax = axes[1, 0]
    level = scored[0]['interval_level']
    for key, coverage, label, style in (
        ('crps', 'coverage', 'model', 'o-'),
        ('baseline_naive_crps', 'baseline_naive_coverage', 'naive distribution', 's--')):
      cover = np.mean([f[coverage] for f in scored])
      ax.plot(x, [f[key] for f in scored], style,
              label=f'{label}: {level:.0%} interval coverage {cover:.2f}')
    ax.set(title='Backtest: test CRPS by fold (series units)', xlabel='Fold', ylabel='CRPS')
    ax.set_xticks(x)
    ax.legend(loc='upper left')
  _save(fig, path)


def plot_search(curves: list, frame, params, path: str) -> None:
  """A search: each trial's validation loss per epoch (pruned ones grey, ending in an x; the
  best in black), and each trial's best validation loss against each searched value
  (completed trials as dots, pruned ones as grey x at their loss when stopped).

  Args:
    curves: (trial number, [val_loss per epoch, None where not finite], Optuna state name).
    frame: search.csv's table (`rnnjax.search_report.table`).
    params: the searched keys (`rnnjax.search_space.Param`).
  """
  plt = pyplot()
  n = len(params)
  fig, axes = plt.subplots(1, n + 1, figsize=(5 + 3 * n, 4), squeeze=False)
  axes = axes[0]
  done = frame[frame['state'] == 'COMPLETE']
  best = int(done.loc[done['value'].idxmin(), 'trial']) if len(done) else None
  lowest = {}  # trial -> its best validation loss so far
  for number, curve, state in curves:
    y_E = np.array([np.nan if v is None else v for v in curve], np.float64)
    if np.isfinite(y_E).any():
      lowest[number] = np.nanmin(y_E)
    x_E = np.arange(1, len(y_E) + 1)
    if number == best:
      axes[0].plot(x_E, y_E, color='black', lw=2, zorder=3, label=f'best: trial {number}')
    elif state == 'PRUNED':
      axes[0].plot(x_E, y_E, color='0.6', lw=0.8)
      if len(y_E):
        axes[0].plot(x_E[-1], y_E[-1], 'x', color='0.4', ms=4)
    else:
      axes[0].plot(x_E, y_E, lw=0.8)
  axes[0].set(title='Validation loss per trial (x: pruned)', xlabel='Epoch',
              ylabel='Validation loss (scaled)')
  positive = [v for v in lowest.values() if v > 0]
  if positive and len(positive) == len(lowest):
    axes[0].set_yscale('log')
  if best is not None:
    axes[0].legend(loc='upper right')
  rows = frame[frame['trial'].isin(list(lowest))]
  loss = rows['trial'].map(lowest)
  ended = rows['state'] == 'COMPLETE'
  for ax, p in zip(axes[1:], params, strict=True):
    x = rows[p.key]
    if p.kind == 'choice':
      labels = list(p.labels())
      x = x.map(labels.index)
      ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize=7)
    elif p.kind == 'log':
      ax.set_xscale('log')
      ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.scatter(x[~ended], loss[~ended], marker='x', color='0.5', s=14, label='pruned')
    ax.scatter(x[ended], loss[ended], s=14, label='completed')
    ax.set(xlabel=p.key, title='Best validation loss')
    if positive and len(positive) == len(lowest):
      ax.set_yscale('log')
  if n:
    axes[1].legend(loc='upper right', fontsize=8)
  fig.tight_layout()
  _save(fig, path)
