"""Every config key rnnjax reads, with the tutorial's values as defaults, and their checks.

Config files in `configs/` start from `default_config()` and change what their experiment
changes. The returned ConfigDict is locked: assigning a key that does not exist here (a typo in
a config file or a `--config.x.y=` override) is an error instead of a silently ignored setting.
"""
from __future__ import annotations

import copy
import json
import math

import ml_collections

from rnnjax.errors import UserError

CELLS = ('gru', 'lstm', 'simple')
FILLS = ('none', 'ffill', 'interpolate')
# data.time_unit: '' (the time column holds dates) or the unit of numbers since 1970-01-01 UTC.
TIME_UNITS = ('', 's', 'ms', 'us', 'ns', 'D')
# data.dayfirst: how dates such as 03/01/2025 read; '' refuses them rather than guess.
DAYFIRST = ('', 'true', 'false')
MAX_FILL_FRACTION = 0.1  # data.max_fill_fraction's default
AUTO = 'auto'  # data.season and data.lags: resolved from the series when the data loads
CALENDAR = ('hour_of_day', 'day_of_week', 'day_of_year', 'month')
SKIPS = ('none', 'persistence', 'seasonal_naive')
NORMALIZATIONS = ('none', 'last', 'mean', 'last_scale')
HIGHWAY_INITS = ('zeros', 'ridge')
HIGHWAY_COLUMNS = ('target', 'all')
LR_SCHEDULES = ('constant', 'cosine')
# What the model forecasts per target step: one value, quantiles, or a normal distribution.
HEADS = ('point', 'quantile', 'gaussian')
ACTIVATIONS = ('tanh', 'swish', 'silu', 'relu', 'gelu', 'sigmoid', 'elu', 'softplus', 'linear')
# Hyper-parameters that change no array shape, so members of one vmapped run may differ in them.
SWEEPABLE = ('learning_rate', 'weight_decay', 'clip_norm', 'dropout')
# Keys that change array shapes or the compiled program: members cannot share one program over
# them. They exist under `sweep` only so that sweeping one is refused with a clear message.
SHAPE_CHANGING = ('hidden_sizes', 'window', 'horizon', 'batch_size', 'cell', 'activation',
                  'epochs', 'implementation')


def default_config() -> ml_collections.ConfigDict:
  """The tutorial's experiment: 24 hourly readings in, the reading 13 steps later out, GRU 24/50/24."""
  c = ml_collections.ConfigDict()

  c.data = ml_collections.ConfigDict()
  c.data.source = 'synthetic'        # 'synthetic' (the tutorial's series) or 'csv'
  c.data.path = ''                   # CSV file, for source='csv'
  c.data.time_column = 'time'        # timestamp column of the CSV
  c.data.target = 'temperature'      # column to forecast (the synthetic series is named this)
  c.data.features = ()               # extra input columns besides the target (past only)
  # Columns known in advance (a price or holiday schedule): read along the input window and at
  # the target time(s); forecasts past the data read them from rows with an empty target.
  c.data.future_features = ()
  c.data.fill = 'none'               # missing values: 'none' (error), 'ffill', 'interpolate'
  # A fill may invent at most this share of a series' points (added timestamps and rows with
  # missing values); more is refused.
  c.data.max_fill_fraction = MAX_FILL_FRACTION
  # Numbers in the time column count this unit since 1970-01-01 UTC: 's', 'ms', 'us', 'ns', 'D'.
  # '' (dates) refuses a numeric time column instead of guessing its unit.
  c.data.time_unit = ''
  # Dates written with day and month first (13/01/2025, 01.02.2025): 'true' reads day/month/year,
  # 'false' month/day/year, '' refuses them instead of guessing. ISO dates need no setting.
  c.data.dayfirst = ''
  c.data.window = 24                 # inputs per sample
  c.data.horizon = 13                # target = y[t + horizon] for inputs y[t-window+1 .. t]
  # True: the targets are y[t+1] .. y[t+horizon], one output per step (direct multi-output);
  # False: the single target y[t+horizon].
  c.data.multi_step = False
  # Long-format CSV of several series: the column naming each row's series ('' is one series).
  c.data.id_column = ''
  c.data.val_fraction = 0.2          # last fraction of the windows, in time order
  # The last floor(test_fraction * n) steps of each series (n points) are a test part: windows
  # whose targets all lie there are scored once, after every choice (epoch, checkpoint) was
  # made on validation; training and validation windows have every target before it. 0: none.
  c.data.test_fraction = 0.0
  # Fit on the training part only. The tutorial fits its MinMaxScaler on the whole series,
  # which lets the validation range leak into training; rnnjax does not.
  c.data.scaler = 'minmax'           # 'minmax' or 'standard' (scikit-learn)
  # Period of the seasonal-naive baseline (and of model.skip='seasonal_naive'), in steps; 'auto'
  # picks, among the seasons of the series' time step (rnnjax.data.STEP_SEASONS), the one whose
  # seasonal-naive forecast errs least on the training windows. A run records the value picked.
  c.data.season = ml_collections.FieldReference(24, field_type=object)
  # Lagged targets as inputs (DeepAR-style): for every input step t the model also reads the
  # target at t - L for each L, so a short window still sees a day or a week ago. A tuple of
  # distinct positive steps; () is off; 'auto' reads the lags of the series' time step
  # (rnnjax.data.STEP_SEASONS). Windows start max(lags) points into each series. A run records
  # the lags it read. See rnnjax.data.model_inputs for where the columns sit.
  c.data.lags = ml_collections.FieldReference((), field_type=object)
  # Calendar inputs from the timestamps, each as a sin/cos pair: along the input window and at
  # the target time (see rnnjax.models.Forecaster). Names from CALENDAR.
  c.data.calendar = ()
  c.data.synthetic = ml_collections.ConfigDict()
  c.data.synthetic.num_days = 200
  c.data.synthetic.slope = 0.005
  c.data.synthetic.amplitude = 5.0
  c.data.synthetic.noise = 0.5
  c.data.synthetic.start = '2025-01-01 10:00'

  c.model = ml_collections.ConfigDict()
  c.model.cell = 'gru'               # 'gru', 'lstm' or 'simple'
  c.model.hidden_sizes = (24, 50, 24)
  c.model.activation = 'swish'       # candidate activation of every cell
  c.model.dropout = 0.1              # after every recurrent layer, as in the tutorial
  c.model.implementation = 'fused'   # 'fused' (input projection hoisted out of the scan) or 'flax'
  # The network forecasts a correction to a naive forecast: 'none', 'persistence' (the last
  # input) or 'seasonal_naive' (the value data.season steps before the target).
  c.model.skip = 'none'
  # Per-window normalisation: subtract each window's 'last' value or 'mean' from its inputs and
  # add the target's back to the forecast; 'last_scale' also divides by each window's standard
  # deviation and multiplies it back (RevIN); 'none' feeds the scaled series as is.
  c.model.normalize = 'none'
  # A linear path beside the network (LSTNet's highway): a Dense map of the window's last
  # `highway` target inputs added to the forecast; 0 is off, at most data.window.
  c.model.highway = 0
  # What the highway reads: 'target' (the target's last `highway` inputs, normalised as the
  # network reads them, and the known lags at the target times) or 'all' (the last `highway`
  # steps of every input column as the data gives them, and every known-future input at the
  # target times: with highway = data.window, the linear baseline's inputs).
  c.model.highway_columns = 'target'
  # How the highway starts: 'zeros' (silent until training moves it) or 'ridge': fitted in
  # closed form (a ridge regression) on the training windows, with the network's head at zero,
  # so the model starts as that linear forecast and the network learns what it misses.
  c.model.highway_init = 'zeros'
  # With highway_init='ridge': keep the fitted ridge regression as it is, and train only the
  # network, on what the ridge misses.
  c.model.highway_fixed = False
  # 'point': one value per step (trained on the squared error); 'quantile': model.quantiles of
  # each step (pinball loss); 'gaussian': a normal distribution, its mean and scale
  # (negative log-likelihood). See rnnjax.models.Forecaster.
  c.model.head = 'point'
  c.model.quantiles = (0.1, 0.5, 0.9)  # levels the quantile head forecasts, and scores pinball at
  c.model.interval = 0.8             # nominal level of the central interval scored and drawn

  c.train = ml_collections.ConfigDict()
  c.train.epochs = 30
  c.train.batch_size = 32
  c.train.learning_rate = 1e-3       # Adam, as Keras' default
  c.train.weight_decay = 0.0         # decoupled (AdamW); 0 is plain Adam
  # 'constant', or 'cosine': linear warm-up over warmup_epochs, then cosine decay to zero at
  # the last epoch (optax.warmup_cosine_decay_schedule, a factor on the learning rate).
  c.train.lr_schedule = 'constant'
  c.train.warmup_epochs = 0
  c.train.clip_norm = 0.0            # global gradient-norm clip; 0 is off
  c.train.seed = 0
  c.train.epochs_per_chunk = 0       # epochs per compiled call; 0 picks checkpoint_every or all
  c.train.val_batch_size = 4096      # windows per validation batch
  c.train.checkpoint_every = 5       # epochs between checkpoints (chunk boundaries)
  c.train.max_to_keep = 2            # recent checkpoints kept (the best is kept besides)
  c.train.early_stopping_patience = 0  # epochs without a better val_loss; 0 is off
  # Early stopping scores the starting parameters too (epoch 0): a model that starts as a
  # fitted ridge regression (model.highway_init='ridge') keeps it when no epoch beats it.
  c.train.score_start = False
  c.train.skip_nonfinite_updates = False  # optax.apply_if_finite: skip steps with NaN/inf grads

  # Rolling-origin backtest (scripts/backtest.py): `folds` forecast origins, the last one
  # `test_length` windows before the end, each `step` windows after the one before. Fold k
  # trains on the data before its origin as train.py would on that data alone (its own split
  # into training and validation windows, its own scalers) and is scored on the next
  # `test_length` windows. 0 picks the default: step = the validation windows // folds,
  # test_length = step. refit=False trains once, on the first fold's data, and scores that
  # model at every origin.
  c.backtest = ml_collections.ConfigDict()
  c.backtest.folds = 4
  c.backtest.step = 0
  c.backtest.test_length = 0
  c.backtest.refit = True

  c.num_seeds = 1                    # members trained at once; member k uses seed train.seed + k
  c.sweep = ml_collections.ConfigDict()
  for name in SWEEPABLE + SHAPE_CHANGING:
    c.sweep[name] = ml_collections.FieldReference(None, field_type=tuple)
  c.sweep.grid = False               # False: one value per member; True: every combination
  c.ensemble_quantiles = (0.1, 0.9)  # band drawn and written for ensembles
  # Members of a device vmapped together; larger ensembles run such groups one after another in
  # the same program. 0: all of a device's members on GPU/TPU, one at a time on CPU.
  c.ensemble_vmap_size = 0

  c.lock()
  return c


def override(config, overrides: dict):
  """Sets dotted keys in place, e.g. override(c, {'train.epochs': 5}); returns the config.

  Unknown keys raise, as on the command line (the config is locked).
  """
  for key, value in overrides.items():
    node = config
    *path, last = key.split('.')
    for part in path:
      node = node[part]
    node[last] = value
  return config


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
  if t.epochs_per_chunk < 0:
    raise UserError(f'train.epochs_per_chunk must be >= 0, got {t.epochs_per_chunk}.')
  if t.early_stopping_patience < 0:
    raise UserError(f'train.early_stopping_patience must be >= 0 (0 is off), '
                    f'got {t.early_stopping_patience}.')
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


def interval_bounds(level: float) -> tuple[float, float]:
  """The quantile levels ((1 - level) / 2, (1 + level) / 2) bounding the central interval,
  rounded to 12 decimals: 0.8 gives (0.1, 0.9), the levels as written, not 0.09999999999999998."""
  return round((1.0 - level) / 2.0, 12), round((1.0 + level) / 2.0, 12)


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


def seasonal_lag(season: int, horizon):
  """Steps back from the target to the latest value one or more whole seasons before it that is
  already known when the forecast is made (at most `horizon` steps after the last input).

  `horizon` may be an int or an integer array (one lag per step)."""
  return season * -(-horizon // season)


def target_steps(data_config) -> tuple[int, ...]:
  """Steps after the last input of each model output: (1, ..., horizon) with data.multi_step,
  else (horizon,)."""
  h = data_config.horizon
  return tuple(range(1, h + 1)) if data_config.multi_step else (h,)


def split_lags(lags, steps) -> tuple[tuple[int, ...], tuple[int, ...]]:
  """(past-only lags, known lags), each in increasing order: the order of their input columns.

  A lag L at least every target step is known at each target time p: y[p - L] lies at or before
  the window's last input, so it is read at the target times as well as along the window (a
  known-future input; L = a season gives the seasonal-naive value). A shorter lag would read
  values after the last input there, so it stays past-only.

  Args:
    lags: data.lags, resolved (not 'auto').
    steps: the target steps (`target_steps`).
  """
  if lags == AUTO:
    raise ValueError("data.lags='auto' is resolved from the series first "
                     '(rnnjax.data.resolved_config)')
  last = max(steps)
  return (tuple(sorted(int(lag) for lag in lags if lag < last)),
          tuple(sorted(int(lag) for lag in lags if lag >= last)))


def replaced(config, **values) -> ml_collections.ConfigDict:
  """A copy of `config` (or of one of its sections) with `values` set: dotted keys as
  `override` takes them, e.g. replaced(config, **{'data.season': 168}). `config` itself is left
  as it is (the library never writes a caller's config)."""
  return override(copy.deepcopy(config), values)


def skip_lags(config) -> tuple[int, ...]:
  """Per output step, how far before a window's last input lies the value `model.skip` adds;
  () when it is 'none'.

  Persistence adds the last input (0); seasonal naive adds the value one season (or the fewest
  whole seasons reaching at least the step) before the step's target, as `rnnjax.metrics`'
  baseline.
  """
  skip = config.model.skip
  steps = target_steps(config.data)
  if skip == 'none':
    return ()
  if skip == 'persistence':
    return (0,) * len(steps)
  if config.data.season == AUTO:
    raise ValueError("data.season='auto' is resolved from the series first "
                     '(rnnjax.data.resolved_config)')
  return tuple(int(seasonal_lag(config.data.season, h)) - h for h in steps)


def to_json(config) -> str:
  """The config as JSON, stable across runs (sorted keys), for workdirs and checkpoints."""
  return json.dumps(config.to_dict(), sort_keys=True, indent=1, default=list)


def from_json(text: str) -> ml_collections.ConfigDict:
  """A config saved by `to_json`, laid over `default_config()` so every key is present."""
  config = default_config()
  config.unlock()
  config.update_from_flattened_dict(_flatten(json.loads(text)))
  config.lock()
  return config


def _flatten(tree: dict, prefix: str = '') -> dict:
  flat = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      flat.update(_flatten(v, f'{prefix}{k}.'))
    else:
      flat[f'{prefix}{k}'] = tuple(v) if isinstance(v, list) else v
  return flat
