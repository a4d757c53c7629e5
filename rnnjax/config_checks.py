"""The checks of a config: `validate` refuses every value rnnjax cannot read with a UserError
naming the key and the fix; `caveats` names settings that run but work against the run's
purpose. The keys and their defaults are `rnnjax.config`'s.
"""
from __future__ import annotations

import math

from rnnjax.config import (ACTIVATIONS, AUTO, CALENDAR, CELLS, DAYFIRST, FILLS, HEADS,
                           HIGHWAY_COLUMNS, HIGHWAY_INITS, LR_SCHEDULES, NORMALIZATIONS, SAMPLES,
                           SKIPS, TIME_UNITS, interval_bounds, skip_lags)
from rnnjax.errors import UserError


def _positive_int(name: str, value) -> None:
  if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
    raise UserError(f'{name} must be a positive integer, got {value!r}.')


def validate(config) -> None:
  """Checks every value rnnjax reads; raises UserError naming the key and the fix."""
  d, m, t = config.data, config.model, config.train
  _positive_int('data.window', d.window)
  _positive_int('data.horizon', d.horizon)
  _check_season(d.season)
  _check_lags(d.lags)
  _positive_int('train.epochs', t.epochs)
  _positive_int('train.batch_size', t.batch_size)
  _positive_int('train.val_batch_size', t.val_batch_size)
  _positive_int('train.checkpoint_every', t.checkpoint_every)
  _positive_int('train.max_to_keep', t.max_to_keep)
  _positive_int('num_seeds', config.num_seeds)
  for key in ('data', 'members'):
    value = config.mesh[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
      raise UserError(f'mesh.{key} must be an integer >= 0 (0 picks for the run), '
                      f'got {value!r}.')
  if t.epochs_per_chunk < 0:
    raise UserError(f'train.epochs_per_chunk must be >= 0, got {t.epochs_per_chunk}.')
  if t.early_stopping_patience < 0:
    raise UserError(f'train.early_stopping_patience must be >= 0 (0 is off), '
                    f'got {t.early_stopping_patience}.')
  _check_epoch_steps(config)
  if t.score_start and not t.early_stopping_patience:
    raise UserError('train.score_start lets early stopping keep the starting parameters; '
                    'turn early stopping on with train.early_stopping_patience > 0.')
  if d.fill not in FILLS:
    raise UserError(f'data.fill={d.fill!r} is not one of {FILLS}.')
  check_reading(d.time_unit, d.dayfirst, d.max_fill_fraction)
  for key, names in (('data.features', d.features), ('data.calendar', d.calendar),
                     ('data.future_features', d.future_features)):
    glued = [n for n in names if isinstance(n, str) and (',' in n or n.startswith('('))]
    if glued:
      raise UserError(f'{key} holds {glued[0]!r} as one name: a tuple of unquoted words on the '
                      'command line reads as one string. Quote each name inside the tuple, e.g. '
                      f'--config.{key}=\'("a","b")\'.')
  named = [*d.features, *d.future_features]
  repeated = sorted({f for f in named if named.count(f) > 1})
  if repeated:
    raise UserError(f'data.features and data.future_features name {repeated} more than once; '
                    'list each column once, in one of the two.')
  if d.target in d.future_features:
    raise UserError(f'data.future_features names the target {d.target!r}; the target is never '
                    'known in advance. Drop it from data.future_features.')
  if not isinstance(d.multi_step, bool):
    raise UserError(f'data.multi_step must be True or False, got {d.multi_step!r}.')
  if d.source == 'synthetic' and d.path:
    raise UserError(f'data.path={d.path!r} is set but data.source is "synthetic", which reads no '
                    'file: pass --config.data.source=csv to train on the file, or drop '
                    'data.path.')
  if d.source == 'synthetic' and (d.id_column or d.future_features):
    raise UserError('data.id_column and data.future_features name CSV columns, but data.source '
                    'is "synthetic": pass --config.data.source=csv and --config.data.path=FILE.')
  if d.id_column and d.id_column in (d.time_column, d.target, *named):
    raise UserError(f'data.id_column={d.id_column!r} is also the time, target or a feature '
                    'column; name the column that says which series each row belongs to.')
  unknown = [name for name in d.calendar if name not in CALENDAR]
  if unknown:
    raise UserError(f'data.calendar names {unknown}, which are not calendar inputs; choose from '
                    f'{CALENDAR}.')
  if len(set(d.calendar)) != len(d.calendar):
    raise UserError(f'data.calendar names an input more than once: {tuple(d.calendar)}.')
  if m.skip not in SKIPS:
    raise UserError(f'model.skip={m.skip!r} is not one of {SKIPS}.')
  if m.highway_init not in HIGHWAY_INITS:
    raise UserError(f'model.highway_init={m.highway_init!r} is not one of {HIGHWAY_INITS}.')
  if m.highway_init == 'ridge' and not m.highway:
    raise UserError('model.highway_init="ridge" fits the highway, which is off: set '
                    'model.highway to the inputs it reads (e.g. --config.model.highway=24).')
  if m.highway_columns not in HIGHWAY_COLUMNS:
    raise UserError(f'model.highway_columns={m.highway_columns!r} is not one of '
                    f'{HIGHWAY_COLUMNS}.')
  if m.highway_fixed and m.highway_init != 'ridge':
    raise UserError('model.highway_fixed keeps a fitted highway as it is; it needs '
                    'model.highway_init="ridge" (and model.highway > 0).')
  if m.normalize not in NORMALIZATIONS:
    raise UserError(f'model.normalize={m.normalize!r} is not one of {NORMALIZATIONS}.')
  if m.normalize == 'last_scale' and m.head != 'point':
    raise UserError(f'model.normalize="last_scale" rescales the point forecast only; with '
                    f'model.head={m.head!r} use model.normalize="last".')
  if (isinstance(m.highway, bool) or not isinstance(m.highway, int)
      or not 0 <= m.highway <= d.window):
    raise UserError(f'model.highway must be an integer from 0 (off) to data.window={d.window}, '
                    f'got {m.highway!r}.')
  if m.skip == 'seasonal_naive' and d.season != AUTO:  # 'auto' picks a season the window holds
    back = max(skip_lags(config))
    if back >= d.window:
      raise UserError(f'model.skip="seasonal_naive" adds the value data.season={d.season} steps '
                      f'(or whole seasons) before the target, {back} steps before the last input, '
                      f'which a window of data.window={d.window} does not hold: use data.window '
                      f'>= {back + 1}, or model.skip="persistence".')
  if t.lr_schedule not in LR_SCHEDULES:
    raise UserError(f'train.lr_schedule={t.lr_schedule!r} is not one of {LR_SCHEDULES}.')
  if (isinstance(t.warmup_epochs, bool) or not isinstance(t.warmup_epochs, int)
      or not 0 <= t.warmup_epochs < t.epochs):
    raise UserError(f'train.warmup_epochs must be an integer in [0, train.epochs), got '
                    f'{t.warmup_epochs!r}.')
  if not 0.0 < d.val_fraction < 1.0:
    raise UserError(f'data.val_fraction must be between 0 and 1 (exclusive), got {d.val_fraction}.')
  if (isinstance(d.test_fraction, bool) or not isinstance(d.test_fraction, (int, float))
      or not 0.0 <= d.test_fraction < 1.0):
    raise UserError(f'data.test_fraction must be a number from 0 (no test part) up to, not '
                    f'including, 1, got {d.test_fraction!r}.')
  if m.cell not in CELLS:
    raise UserError(f'model.cell={m.cell!r} is not one of {CELLS}.')
  _check_head(m)
  if m.activation not in ACTIVATIONS:
    raise UserError(f'model.activation={m.activation!r} is not one of {ACTIVATIONS}.')
  if m.implementation not in ('fused', 'flax'):
    raise UserError(f'model.implementation={m.implementation!r} is not "fused" or "flax".')
  if not m.hidden_sizes:
    raise UserError('model.hidden_sizes is empty: give at least one layer size, e.g. (24,).')
  for size in m.hidden_sizes:
    _positive_int('every entry of model.hidden_sizes', size)
  if not 0.0 <= m.dropout < 1.0:
    raise UserError(f'model.dropout must be in [0, 1), got {m.dropout}.')
  for name, value in (('train.learning_rate', t.learning_rate),
                      ('train.weight_decay', t.weight_decay), ('train.clip_norm', t.clip_norm),
                      ('model.dropout', m.dropout)):
    if not isinstance(value, (int, float)) or not math.isfinite(value):
      raise UserError(f'{name} must be a finite number, got {value!r}.')
  if t.learning_rate <= 0:
    raise UserError(f'train.learning_rate must be > 0, got {t.learning_rate}.')
  if t.weight_decay < 0 or t.clip_norm < 0:
    raise UserError('train.weight_decay and train.clip_norm must be >= 0 (0 is off).')
  if (isinstance(config.ensemble_vmap_size, bool) or not isinstance(config.ensemble_vmap_size, int)
      or config.ensemble_vmap_size < 0):
    raise UserError(f'ensemble_vmap_size must be an integer >= 0 (0 picks for the device), '
                    f'got {config.ensemble_vmap_size!r}.')
  b = config.backtest
  for name in ('step', 'test_length'):
    value = b[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
      raise UserError(f'backtest.{name} must be an integer >= 0 (0 picks the default), got '
                      f'{value!r}.')
  if isinstance(b.folds, bool) or not isinstance(b.folds, int) or b.folds < 1:
    raise UserError(f'backtest.folds must be an integer >= 1, got {b.folds!r}.')
  if not isinstance(b.refit, bool):
    raise UserError(f'backtest.refit must be True or False, got {b.refit!r}.')
  if len(config.ensemble_quantiles) < 2:
    raise UserError(f'ensemble_quantiles must hold the two ends of the band, e.g. (0.1, 0.9); '
                    f'got {tuple(config.ensemble_quantiles)}.')
  for q in config.ensemble_quantiles:
    if not isinstance(q, (int, float)) or not 0.0 < q < 1.0:
      raise UserError(f'ensemble_quantiles must lie strictly between 0 and 1, got {q}.')


def _check_epoch_steps(config) -> None:
  """train.steps_per_epoch, train.val_windows and data.sample (see default_config)."""
  t = config.train
  for name, value, meaning in (
      ('train.steps_per_epoch', t.steps_per_epoch,
       'batches drawn per epoch; 0 trains on every window each epoch'),
      ('train.val_windows', t.val_windows,
       'validation windows the per-epoch val_loss reads; 0 reads them all')):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
      raise UserError(f'{name} must be an integer >= 0 ({meaning}), got {value!r}: e.g. '
                      f'--config.{name}=1000, or 0.')
  sample = config.data.sample
  if sample not in SAMPLES:
    raise UserError(f'data.sample={sample!r} is not one of {SAMPLES}.')
  if sample == 'series' and not t.steps_per_epoch:
    raise UserError('data.sample="series" draws each batch series by series, but '
                    'train.steps_per_epoch=0 trains on every window each epoch, which draws '
                    'nothing: set --config.train.steps_per_epoch=N (batches per epoch), or '
                    'data.sample="window".')


def check_draws(config, num_train_windows: int) -> None:
  """train.batch_size against the training windows when batches are drawn
  (train.steps_per_epoch > 0): a batch drawn from fewer windows than it holds repeats some of
  them in every step. With steps_per_epoch 0 an epoch visits each window once, in one batch at
  most (`rnnjax.run` warns).

  Args:
    config: the run's config.
    num_train_windows: the training windows of the run (a backtest's: its first fold's, the
      fewest).

  Raises:
    UserError: batch_size larger than num_train_windows, naming both and the fix.
  """
  t = config.train
  if t.steps_per_epoch and t.batch_size > num_train_windows:
    raise UserError(f'train.batch_size={t.batch_size} is more windows than the '
                    f'{num_train_windows} training windows that train.steps_per_epoch='
                    f'{t.steps_per_epoch} draws its batches from: every batch would repeat '
                    f'windows. Use --config.train.batch_size={num_train_windows} or less, or '
                    'train.steps_per_epoch=0 (every window once per epoch).')


def _check_season(season) -> None:
  if season == AUTO:
    return
  if isinstance(season, bool) or not isinstance(season, int) or season <= 0:
    raise UserError(f'data.season must be a positive integer (steps per season, e.g. 24 for a '
                    f'daily cycle of hourly data) or \'auto\', got {season!r}.')


def _check_lags(lags) -> None:
  if lags == AUTO:
    return
  example = "--config.data.lags='(24,168)'"
  if not isinstance(lags, (tuple, list)):
    raise UserError(f'data.lags must be a tuple of positive integers (steps back), () for none, '
                    f'or \'auto\'; got {lags!r}. Write one lag as a tuple too, e.g. '
                    f'--config.data.lags=\'({lags},)\', several as {example}.')
  bad = [lag for lag in lags if isinstance(lag, bool) or not isinstance(lag, int) or lag <= 0]
  if bad:
    raise UserError(f'data.lags={tuple(lags)} holds {bad[0]!r}: every lag must be a positive '
                    f'integer, the steps back from an input to the value it adds, e.g. {example}.')
  repeated = sorted({lag for lag in lags if list(lags).count(lag) > 1})
  if repeated:
    raise UserError(f'data.lags={tuple(lags)} names {repeated} more than once; list each lag '
                    f'once: {tuple(sorted(set(lags)))}.')


def check_reading(time_unit, dayfirst, max_fill_fraction) -> None:
  """data.time_unit, data.dayfirst and data.max_fill_fraction (see default_config)."""
  if time_unit not in TIME_UNITS:
    raise UserError(f'data.time_unit={time_unit!r} is not one of {TIME_UNITS}: \'\' when the '
                    'time column holds dates, else the unit of its numbers since 1970-01-01 UTC '
                    '(s, ms, us, ns or D for days).')
  if not isinstance(dayfirst, str) or dayfirst.lower() not in DAYFIRST:
    raise UserError(f'data.dayfirst={dayfirst!r} is not one of {DAYFIRST}: \'true\' reads '
                    '13/01/2025 as day/month/year, \'false\' reads 01/13/2025 as month/day/year.')
  if (isinstance(max_fill_fraction, bool) or not isinstance(max_fill_fraction, (int, float))
      or not 0.0 <= max_fill_fraction <= 1.0):
    raise UserError(f'data.max_fill_fraction must be a number from 0 to 1, got '
                    f'{max_fill_fraction!r}: the largest share of a series data.fill may invent.')


def _check_head(m) -> None:
  """model.head, model.quantiles and model.interval (see default_config)."""
  if m.head not in HEADS:
    raise UserError(f'model.head={m.head!r} is not one of {HEADS}: "point" forecasts one value '
                    'per step, "quantile" the levels in model.quantiles, "gaussian" a normal '
                    'distribution.')
  levels = tuple(m.quantiles)
  if not levels:
    raise UserError('model.quantiles is empty: give the levels to forecast and score, e.g. '
                    '--config.model.quantiles="(0.1,0.5,0.9)".')
  for q in levels:
    if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0.0 < q < 1.0:
      raise UserError(f'model.quantiles={levels} holds {q!r}: every level must lie strictly '
                      'between 0 and 1, e.g. --config.model.quantiles="(0.1,0.5,0.9)".')
  if any(b <= a for a, b in zip(levels, levels[1:], strict=False)):
    raise UserError(f'model.quantiles={levels} must be strictly increasing, each level once: '
                    f'give them as {tuple(sorted(set(levels)))}.')
  interval = m.interval
  if isinstance(interval, bool) or not isinstance(interval, (int, float)) or \
      not 0.0 < interval < 1.0:
    raise UserError(f'model.interval={interval!r} must lie strictly between 0 and 1: it is the '
                    'nominal level of the central interval, e.g. 0.8 for the 10%-90% interval.')
  if m.head == 'quantile':
    missing = [b for b in interval_bounds(interval)
               if not any(abs(b - q) <= 1e-6 for q in levels)]
    if missing:
      bounds = ', '.join(f'{b:.6g}' for b in interval_bounds(interval))
      raise UserError(f'model.quantiles={levels} lacks the bounds of the central '
                      f'{interval:g} interval ({bounds}) that the quantile head scores and draws: '
                      f'add them to model.quantiles, or set model.interval to a level whose '
                      'bounds it holds.')


def caveats(config) -> list[str]:
  """Settings that run but work against the run's purpose; the run logs each as a warning."""
  out = []
  if config.model.head != 'point' and config.model.dropout > 0:
    out.append(f'model.head={config.model.head!r} with model.dropout={config.model.dropout}: the '
               'spread is trained on forecasts perturbed by dropout and forecasting runs without '
               'it, so the intervals come out too wide (docs/distributions.md); '
               '--config.model.dropout=0 avoids it.')
  return out
