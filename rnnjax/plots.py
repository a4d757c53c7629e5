"""The tutorial's figures: the loss per epoch, and real vs predicted values in original units.

Matplotlib is imported when a figure is first drawn (0.5 s), through `pyplot()`; `rnnjax.run`
calls it in the background while training runs. The Agg backend writes files and never needs a
display.
"""
from __future__ import annotations

import functools

import numpy as np


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
    curve = np.atleast_2d(np.asarray(history[key], np.float64))
    epochs = np.arange(1, curve.shape[1] + 1)
    mean = np.nanmean(curve, axis=0)
    line, = ax.plot(epochs, mean, label=f'{label}: {mean[-1]:.4f}')
    if curve.shape[0] > 1:
      ax.fill_between(epochs, np.nanmin(curve, 0), np.nanmax(curve, 0), alpha=0.2,
                      color=line.get_color())
  ax.set(title='Loss per epoch', xlabel='Epoch', ylabel=ylabel)
  ax.legend(loc='upper right')
  _save(fig, path)


def plot_predictions(panels: dict, path: str, last: int = 500) -> None:
  """Real vs predicted on all training and validation windows, then the last `last` of each,
  then every test window (when there is a test part); with several target steps, a last panel
  of the validation RMSE against the lead time.

  Args:
    panels: {'train': (real [N], pred [N], band or None), 'val': (...)}, and 'test': (...)
      with a test part; a band is
      (low [N], high [N]) in original units: a probabilistic head's central interval, or the
      spread of a point ensemble's members. Optional: 'band_label', what the band is (e.g.
      '80% central interval'); 'label', what the panels show (e.g. 'series a, step 24');
      'lead', {'step', 'val_rmse',
      'baseline_persistence_rmse', 'baseline_seasonal_naive_rmse', 'baseline_linear_rmse'}: [S]
      arrays, and 'title'.
    path: PNG to write.
    last: points in the zoomed panels.
  """
  plt = pyplot()
  lead = panels.get('lead')
  specs = [('train', 'All training', None), ('val', 'All validation', None),
           ('train', 'Last training', last), ('val', 'Last validation', last)]
  if 'test' in panels:
    specs.append(('test', 'Test (scored once, after every choice)', None))
  rows = len(specs) + (lead is not None)
  # A screen's height for four panels; the legend has a fixed corner (matplotlib's 'best' place
  # tests every drawn point) and the margins are fixed (tight_layout draws the figure twice).
  fig, axes = plt.subplots(rows, 1, figsize=(12, 3.5 * rows))
  fig.subplots_adjust(left=0.06, right=0.98, bottom=0.04, top=0.97, hspace=0.35)
  label = panels.get('label')
  suffix = f' ({label})' if label else ''
  for ax, (part, title, tail) in zip(axes[:len(specs)], specs, strict=True):
    real, pred, band = panels[part]
    x = np.arange(len(real))
    if tail:
      x, real, pred = x[-tail:], real[-tail:], pred[-tail:]
      band = None if band is None else (band[0][-tail:], band[1][-tail:])
    ax.plot(x, real, label='Real')
    ax.plot(x, pred, label='Predicted')
    if band is not None:
      ax.fill_between(x, band[0], band[1], alpha=0.3, color='C1',
                      label=panels.get('band_label', 'Band'))
    ax.set(title=title + suffix, xlabel='Window', ylabel='Value (original units)')
    ax.set_xlim(x[0], x[-1])
    ax.legend(loc='upper left')
  if lead is not None:
    ax = axes[-1]
    for key, name, style in (('val_rmse', 'Model', 'o-'),
                             ('baseline_persistence_rmse', 'Persistence', 's--'),
                             ('baseline_seasonal_naive_rmse', 'Seasonal naive', '^--'),
                             ('baseline_linear_rmse', 'Linear ridge', 'd--')):
      ax.plot(lead['step'], lead[key], style, label=name, markersize=3)
    ax.set(title=lead['title'], xlabel='Steps ahead',
           ylabel='RMSE (original units)')
    ax.legend(loc='upper left')
  _save(fig, path)


def plot_forecast(frame, path: str, title: str, last: int = 500,
                  interval: float | None = None) -> None:
  """scripts/predict.py's figure of one series' forecast (the rows `forecast_frame` returns).

  Top: the observed values and the forecast at the longest lead, over the last `last` target
  times, then the forecast of the last window, every step, past the data. Bottom (with several
  steps): the RMSE at each lead over the rows whose target was observed.

  Args:
    frame: rows of one series with input_end, step, target_time, forecast, actual; with
      lower and upper (a probabilistic head) the central interval is drawn as a band.
    path: PNG to write.
    title: names the series and the run.
    last: target times in the top panel.
    interval: the interval's nominal level, for its label.
  """
  plt = pyplot()
  steps = np.unique(frame['step'])
  fig, axes = plt.subplots(2 if len(steps) > 1 else 1, 1, figsize=(12, 7 if len(steps) > 1 else 4),
                           squeeze=False)
  fig.subplots_adjust(left=0.07, right=0.98, bottom=0.08, top=0.92, hspace=0.35)
  ax = axes[0, 0]
  longest = frame[frame['step'] == steps[-1]].tail(last)
  ax.plot(longest['target_time'], longest['actual'], label='Observed')
  ax.plot(longest['target_time'], longest['forecast'], label=f'Forecast {steps[-1]} steps ahead')
  final = frame[frame['input_end'] == frame['input_end'].max()]
  ax.plot(final['target_time'], final['forecast'], 'o-', markersize=2,
          label='Forecast from the last window')
  if 'lower' in frame and 'upper' in frame:
    said = f'{interval * 100:g}% central interval' if interval else 'Central interval'
    for rows, name, color in ((longest, said, 'C1'), (final, None, 'C2')):
      ax.fill_between(rows['target_time'], rows['lower'], rows['upper'], alpha=0.25,
                      color=color, label=name)
  ax.set(title=title, ylabel='Value (original units)')
  ax.legend(loc='upper left')
  if len(steps) > 1:
    known = frame[frame['actual'].notna()]
    squared = ((known['forecast'] - known['actual']) ** 2).groupby(known['step']).mean()
    axes[1, 0].plot(squared.index, np.sqrt(squared.to_numpy()), 'o-', markersize=3)
    axes[1, 0].set(title='RMSE by lead time over the observed targets', xlabel='Steps ahead',
                   ylabel='RMSE (original units)')
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
