"""Windows and their targets, as start indices into a series, and their split into training,
validation and test windows.

Windows are never stored. A window is a start index `s` into the series; sample `s` reads the
inputs `series[s : s + window]` and the target `series[s + window - 1 + horizon]`, so `horizon=1`
is the next step; with data.multi_step, the targets `series[s + window : s + window + horizon]`.
The tutorial's `adelanto_prediccion=12` puts its target 13 steps after the last input:
`horizon=13` here. With data.lags, windows start max(lags) points into each series, so that
every lag an input reads lies in it. `check_lengths` refuses a series too short for a training
and a validation window (and a test window, with data.test_fraction).
"""
from __future__ import annotations

import math

import numpy as np

from rnnjax import config as config_lib
from rnnjax.errors import UserError


def target_offset(window: int, horizon: int) -> int:
  """Steps from a window's start to its target: the one place that defines a sample's target.

  Sample `s` reads inputs `series[s : s + window]` and its target `series[s + target_offset]`,
  `horizon` steps after the last input.
  """
  return window - 1 + horizon


def window_starts(n_points: int, window: int, horizon: int, first: int = 0) -> np.ndarray:
  """Start index of every complete (window, target) pair.

  Args:
    n_points: length of the series.
    window: inputs per sample.
    horizon: steps from the last input to the target (1 = next step).
    first: the earliest start: max(data.lags), so that every lag an input reads lies in the
      series.

  Returns:
    int32 array [N]; window i reads series[s : s + window], s = its start, and its target
    series[s + window - 1 + horizon].
  """
  return np.arange(first, max(n_points - window - horizon + 1, first), dtype=np.int32)


def split_starts(starts: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
  """Chronological split of `starts` [N]: the first floor(N * (1 - val_fraction)) windows train,
  the rest validate."""
  n_train = math.floor(len(starts) * (1.0 - val_fraction))
  return starts[:n_train], starts[n_train:]


def test_boundary(n_points: int, test_fraction: float) -> int:
  """Index of a series' first test point: its last floor(test_fraction * n_points) points are
  the test part (none for 0)."""
  return n_points - math.floor(test_fraction * n_points)


def part_starts(n_points: int, window: int, horizon: int, val_fraction: float,
                test_fraction: float = 0.0, first_step: int | None = None,
                first: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The training, validation and test windows of one series of `n_points` points.

  A window whose targets all lie in the test part (`test_boundary`) is a test window; the
  windows whose targets all lie before it are split chronologically by `split_starts`; a
  window with targets on both sides (multi-step targets across the boundary) is in no part.

  Args:
    n_points: length of the series.
    window, horizon, first: as `window_starts`.
    val_fraction: share of the windows before the test part that validate.
    test_fraction: share of the points that are the test part.
    first_step: steps from the last input to the first target (1 with data.multi_step);
      None is `horizon`, a single target.

  Returns:
    int32 ([N_train], [N_val], [N_test]) window starts, in time order.
  """
  starts_N = window_starts(n_points, window, horizon, first)
  boundary = test_boundary(n_points, test_fraction)
  first_target_N = starts_N + window - 1 + (horizon if first_step is None else first_step)
  last_target_N = starts_N + window - 1 + horizon
  train_N, val_N = split_starts(starts_N[last_target_N < boundary], val_fraction)
  return train_N, val_N, starts_N[first_target_N >= boundary]


def gather_windows(series_TF, starts_B, window: int, steps, target_index: int = 0):
  """Gathers windows from a series by start index; works on NumPy and JAX arrays alike.

  Args:
    series_TF: [T, F] series.
    starts_B: [B] int start indices.
    window: inputs per sample.
    steps: steps from the last input to each target: an int (the horizon, one target) or a
      sequence of S ints (e.g. 1..horizon for multi-step forecasts).
    target_index: feature column that holds the target.

  Returns:
    (x_BWF [B, W, F], y_BS [B, S]); W = window.
  """
  offsets_W = np.arange(window, dtype=np.int32)
  x_BWF = series_TF[starts_B[:, None] + offsets_W[None, :]]
  y_BS = series_TF[target_positions(starts_B, window, steps), target_index]
  return x_BWF, y_BS


def target_positions(starts_B, window: int, steps):
  """[B, S] positions of each window's targets, `steps` (an int or S ints) after its last
  input; NumPy or JAX alike."""
  steps_S = np.atleast_1d(np.asarray(steps, np.int32))
  return starts_B[:, None] + (window - 1 + steps_S)[None, :]


def gather_future(series_TF, starts_B, window: int, steps, num_known: int):
  """The known-in-advance inputs (the last K = `num_known` columns of series_TF [T, F]) at the
  target times of the windows at starts_B [B].

  Returns:
    [B, S, K], or None when `num_known` is 0.
  """
  if not num_known:
    return None
  return series_TF[target_positions(starts_B, window, steps)][..., -num_known:]


def window_counts(n_points: int, window: int, horizon: int, val_fraction: float,
                   first: int = 0, test_fraction: float = 0.0,
                   first_step: int | None = None) -> tuple[int, int, int]:
  """(training, validation, test) windows of a series of `n_points` points (`part_starts`)."""
  return tuple(len(part) for part in part_starts(n_points, window, horizon, val_fraction,
                                                 test_fraction, first_step, first))


def enough_windows(counts: tuple[int, int, int], test_fraction: float) -> bool:
  """Whether window counts hold a training and a validation window, and a test window when
  `test_fraction` > 0."""
  return counts[0] > 0 and counts[1] > 0 and (test_fraction == 0 or counts[2] > 0)


def check_lengths(n_points: int, window: int, horizon: int, val_fraction: float,
                  name: str = '', first: int = 0, test_fraction: float = 0.0,
                  first_step: int | None = None) -> None:
  """Raises UserError unless the series yields at least one training and one validation window,
  each starting `first` (max(data.lags)) or more points into it, and one test window when
  `test_fraction` > 0 (`part_starts`)."""
  for key, value in (('data.window', window), ('data.horizon', horizon)):
    if not isinstance(value, (int, np.integer)) or value <= 0:
      raise UserError(f'{key} must be a positive integer, got {value!r}.')
  if not 0.0 < val_fraction < 1.0:
    raise UserError(f'data.val_fraction must be between 0 and 1 (exclusive), got {val_fraction}.')
  test = {'test_fraction': test_fraction, 'first_step': first_step}
  counts = window_counts(n_points, window, horizon, val_fraction, first, **test)
  if enough_windows(counts, test_fraction):
    return
  n_train, n_val, n_test = counts
  series = f'series {name!r}' if name else 'the series'
  left = (f'{n_train} training, {n_val} validation and {n_test} test windows' if test_fraction
          else f'{n_train} training and {n_val} validation windows')
  split = f'window={window}, horizon={horizon}, val_fraction={val_fraction}' + (
      f', test_fraction={test_fraction}' if test_fraction else '')

  def fewest(lag: int) -> int:
    return next(n for n in range(n_points + 1, 10**8) if enough_windows(
        window_counts(n, window, horizon, val_fraction, lag, **test), test_fraction))

  if first and enough_windows(window_counts(n_points, window, horizon, val_fraction, 0, **test),
                       test_fraction):
    longest = next((lag for lag in range(first - 1, 0, -1) if enough_windows(
        window_counts(n_points, window, horizon, val_fraction, lag, **test), test_fraction)),
                   0)
    shorter = f'lags of at most {longest} steps' if longest > 0 else 'no data.lags'
    raise UserError(
        f'{series} has {n_points} points, too short for data.lags reaching {first} steps back: '
        f'its windows start {first} points in, which leaves {left} ({split}). '
        f'Use {shorter}, or a series of at least {fewest(first)} points.')
  test_text = ''
  if test_fraction > 0:
    test_text = (f'; data.test_fraction={test_fraction} keeps its last '
                 f'{n_points - test_boundary(n_points, test_fraction)} points for the test part')
  raise UserError(
      f'{series} has {n_points} points, too short for {split}{test_text}: that leaves {left}. '
      f'Use a series of at least {fewest(first)} points, a smaller window/horizon'
      + (' or a smaller data.test_fraction.' if test_fraction > 0 else '.'))


def test_args(data_config) -> dict:
  """check_lengths' and part_starts' test_fraction and first_step from a data config."""
  return {'test_fraction': float(data_config.get('test_fraction', 0.0)),
          'first_step': min(config_lib.target_steps(data_config))}
