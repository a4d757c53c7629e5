"""Every config key rnnjax reads, with the tutorial's values as defaults, and what the keys imply
(target steps, lags read at the target times, skip lags, interval bounds); their checks are
`rnnjax.config_checks`'.

Config files in `configs/` start from `default_config()` and change what their experiment
changes. The returned ConfigDict is locked: assigning a key that does not exist here (a typo in
a config file or a `--config.x.y=` override) is an error instead of a silently ignored setting.
"""
from __future__ import annotations

import copy
import json

import ml_collections

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
# data.sample: how drawn batches (train.steps_per_epoch > 0) pick windows: uniformly over the
# training windows, or over the series first, then over that series' windows.
SAMPLES = ('window', 'series')
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
  # How batches drawn with train.steps_per_epoch > 0 pick their windows: 'window' uniformly over
  # every training window (a series weighs by its windows), 'series' a series uniformly, then a
  # window of it uniformly (each series weighs the same). Needs train.steps_per_epoch > 0.
  c.data.sample = 'window'
  # The last floor(test_fraction * n) steps of each series (n points) are a test part: windows
  # whose targets all lie there are scored once, after every choice (epoch, checkpoint) was
  # made on validation; training and validation windows have every target before it. 0: none.
  c.data.test_fraction = 0.0
  # Fit on the training part only. The tutorial fits its MinMaxScaler on the whole series,
  # which lets the validation range leak into training; rnnjax does not.
  c.data.scaler = 'minmax'           # 'minmax' or 'standard' (scikit-learn)
  # Period of the seasonal-naive baseline (and of model.skip='seasonal_naive'), in steps; 'auto'
  # picks, among the seasons of the series' time step (rnnjax.seasons.STEP_SEASONS), the one whose
  # seasonal-naive forecast errs least on the training windows. A run records the value picked.
  c.data.season = ml_collections.FieldReference(24, field_type=object)
  # Lagged targets as inputs (DeepAR-style): for every input step t the model also reads the
  # target at t - L for each L, so a short window still sees a day or a week ago. A tuple of
  # distinct positive steps; () is off; 'auto' reads the lags of the series' time step
  # (rnnjax.seasons.STEP_SEASONS). Windows start max(lags) points into each series. A run records
  # the lags it read. See rnnjax.inputs.model_inputs for where the columns sit.
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
  # 0: an epoch is every training window once, in a fresh order (the last batch padded). N > 0:
  # an epoch is N batches of batch_size windows drawn independently, with replacement, as
  # data.sample says (rnnjax.train_data.batch_draws): for panels too large to visit whole.
  c.train.steps_per_epoch = 0
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
  # The per-epoch val_loss (early stopping, the best epoch) reads this many validation windows,
  # drawn once from train.seed (rnnjax.train_data.val_subset); 0, or at least their number, reads
  # them all. The final scores (metrics.json) always read every validation window.
  c.train.val_windows = 0
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

  # scripts/search.py: an Optuna study whose trials train as the members of one program
  # (rnnjax.search). Each trial trains one model with seed train.seed; its score is its best
  # validation loss (the test part is never read).
  c.search = ml_collections.ConfigDict()
  # What to search, a tuple of (key, kind, ...): (key, 'log', low, high) or (key, 'uniform',
  # low, high) for a hyper-parameter members can vary (SWEEPABLE), (key, 'choice', v1, v2, ...)
  # for any other key; trials that share the other choices train in one program. () searches
  # rnnjax.search_space.default_space(config).
  c.search.space = ml_collections.FieldReference((), field_type=tuple)
  c.search.trials = 64                # trials in the study
  c.search.members = 16               # trials asked together and trained as one program
  # Rungs: a trial is judged after min_epochs, min_epochs * eta, min_epochs * eta^2, ... epochs
  # (0: train.epochs // eta^2); the pruner keeps about the best 1/eta at each.
  c.search.eta = 3
  c.search.min_epochs = 0
  # 'successive_halving' (the best 1/eta of every value reported at a rung go on,
  # rnnjax.search_pruner), 'asha' (Optuna's asynchronous SuccessiveHalvingPruner),
  # 'hyperband' (Optuna's HyperbandPruner) or 'none'.
  c.search.pruner = 'successive_halving'
  c.search.sampler = 'tpe'            # 'tpe' (Optuna's TPESampler) or 'random'
  c.search.seed = 0                   # the sampler's seed

  # How a run's devices are split (rnnjax.devices.training_mesh): `data` devices share each
  # model's minibatch (its gradients averaged across them), `members` devices split an
  # ensemble's members; data x members must be the device count. 0 picks: every device for the
  # data of a single model, for the members of an ensemble. A single model with data 1 trains
  # on one device.
  c.mesh = ml_collections.ConfigDict()
  c.mesh.data = 0
  c.mesh.members = 0

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


def interval_bounds(level: float) -> tuple[float, float]:
  """The quantile levels ((1 - level) / 2, (1 + level) / 2) bounding the central interval,
  rounded to 12 decimals: 0.8 gives (0.1, 0.9), the levels as written, not 0.09999999999999998."""
  return round((1.0 - level) / 2.0, 12), round((1.0 + level) / 2.0, 12)


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
                     '(rnnjax.seasons.resolved_config)')
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
                     '(rnnjax.seasons.resolved_config)')
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
