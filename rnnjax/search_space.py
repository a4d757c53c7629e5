"""What a search varies: `search.space` read into Optuna distributions, checked before anything
runs, and the rungs at which trials are judged.

An entry of `search.space` is (key, kind, ...):
  (key, 'log', low, high)      log-uniform, for a hyper-parameter members of one program can
  (key, 'uniform', low, high)  differ in (`MEMBER_KEYS`: learning rate, weight decay, clip norm,
                               dropout);
  (key, 'choice', v1, v2, ...) one of the values, for any searchable key. A choice of a key that
                               changes the compiled program (model.hidden_sizes, data.window,
                               data.lags...) splits a batch of trials into one program per
                               combination of such values.
Keys that fix the task or how it is scored (`FIXED`) cannot be searched: trials would not be
comparable.
"""
from __future__ import annotations

import dataclasses
import difflib
import math

from rnnjax import config as config_lib
from rnnjax import config_checks
from rnnjax.errors import UserError

# Config keys that members of one program may differ in, and their name in a member plan.
MEMBER_KEYS = {'train.learning_rate': 'learning_rate', 'train.weight_decay': 'weight_decay',
               'train.clip_norm': 'clip_norm', 'model.dropout': 'dropout'}
assert set(MEMBER_KEYS.values()) == set(config_lib.SWEEPABLE)
RANGES = ('log', 'uniform')
KINDS = RANGES + ('choice',)
PRUNERS = ('successive_halving', 'asha', 'hyperband', 'none')
SAMPLERS = ('tpe', 'random')
# Keys (or sections, ending in '.') that define the task, its data, its scoring or the run's
# bookkeeping: a trial that changed one would answer another question, or score on another scale.
FIXED = ('data.source', 'data.path', 'data.time_column', 'data.target', 'data.id_column',
         'data.horizon', 'data.multi_step', 'data.val_fraction', 'data.test_fraction',
         'data.scaler', 'data.fill', 'data.max_fill_fraction', 'data.time_unit',
         'data.dayfirst', 'data.synthetic.', 'model.head', 'model.quantiles', 'model.interval',
         'train.epochs', 'train.seed', 'train.val_batch_size', 'train.val_windows',
         'train.checkpoint_every', 'train.max_to_keep', 'train.epochs_per_chunk', 'num_seeds',
         'sweep.', 'search.', 'backtest.', 'ensemble_quantiles', 'ensemble_vmap_size')


@dataclasses.dataclass(frozen=True)
class Param:
  """One searched key: its kind ('log', 'uniform', 'choice') and bounds or values."""
  key: str
  kind: str
  values: tuple

  @property
  def member(self) -> bool:
    """Whether members of one program may differ in it."""
    return self.key in MEMBER_KEYS

  def labels(self) -> tuple[str, ...]:
    """A choice's values as the study stores them (Optuna's choices are plain strings)."""
    return tuple(repr(v) for v in self.values)

  def distribution(self):
    """The Optuna distribution the sampler draws this key from."""
    import optuna  # pylint: disable=import-outside-toplevel
    if self.kind == 'choice':
      return optuna.distributions.CategoricalDistribution(self.labels())
    low, high = self.values
    return optuna.distributions.FloatDistribution(low, high, log=self.kind == 'log')

  def value(self, drawn):
    """The config value of what the study drew (a label for a choice)."""
    if self.kind == 'choice':
      return self.values[self.labels().index(drawn)]
    return float(drawn)


def default_space(config) -> tuple:
  """A space that fits `config`: the learning rate a decade either side of its own, weight
  decay from 1e-6 to 1e-2 (log), dropout from 0 to 0.5."""
  lr = config.train.learning_rate
  return (('train.learning_rate', 'log', lr / 10, min(lr * 10, 0.1)),
          ('train.weight_decay', 'log', 1e-6, 1e-2),
          ('model.dropout', 'uniform', 0.0, 0.5))


def _config_has(config, key: str) -> bool:
  node = config
  for part in key.split('.'):
    if not hasattr(node, 'keys') or part not in node.keys():
      return False
    node = node[part]
  return not hasattr(node, 'keys')  # a value, not a section


def _leaf_keys(config, prefix: str = '') -> list[str]:
  keys = []
  for k in config.keys():
    if hasattr(config[k], 'keys'):
      keys += _leaf_keys(config[k], f'{prefix}{k}.')
    else:
      keys.append(f'{prefix}{k}')
  return keys


def _fixed(key: str) -> bool:
  return any(key == f or (f.endswith('.') and key.startswith(f)) for f in FIXED)


def parse(config) -> tuple[Param, ...]:
  """`search.space` (or `default_space`) as Params, every entry checked.

  Raises:
    UserError: a malformed entry, a key that does not exist or cannot be searched, a key given
      twice, an empty or inverted range, a range over a key that changes the compiled program,
      or a value the config checks refuse.
  """
  entries = tuple(config.search.space) or default_space(config)
  params, seen = [], set()
  for entry in entries:
    if (not isinstance(entry, (tuple, list)) or len(entry) < 2 or not isinstance(entry[0], str)
        or entry[1] not in KINDS):
      raise UserError(f'search.space entry {entry!r} is not (key, kind, ...) with kind one of '
                      f"{KINDS}, e.g. ('train.learning_rate', 'log', 1e-4, 1e-2) or "
                      "('model.hidden_sizes', 'choice', (32,), (64, 64)).")
    key, kind, values = entry[0], entry[1], tuple(entry[2:])
    if not _config_has(config, key):
      searchable = [k for k in _leaf_keys(config) if not _fixed(k)]
      close = ([k for k in searchable if k.split('.')[-1] == key.split('.')[-1]]
               or difflib.get_close_matches(key, searchable, n=1))
      raise UserError(f'search.space: {key!r} is not a config key'
                      + (f' (did you mean {close[0]!r}?)' if close else '') + '.')
    if _fixed(key):
      raise UserError(f'search.space: {key!r} cannot be searched: it fixes the task, its data '
                      'or how trials are scored, so trials differing in it would not be '
                      'comparable. Searchable: model.*, train.* hyper-parameters, data.window, '
                      'data.lags, data.features, data.calendar and the like.')
    if key in seen:
      raise UserError(f'search.space gives {key!r} twice.')
    seen.add(key)
    if kind in RANGES:
      _check_range(config, key, kind, values)
      values = (float(values[0]), float(values[1]))
    else:
      _check_choices(config, key, values)
    params.append(Param(key, kind, values))
  return tuple(params)


def _check_range(config, key: str, kind: str, values: tuple) -> None:
  if key not in MEMBER_KEYS:
    raise UserError(f'search.space: {key!r} changes the compiled program, so it cannot take a '
                    f"range: give the values to try, ({key!r}, 'choice', v1, v2, ...). Ranges "
                    f'are for {", ".join(MEMBER_KEYS)}.')
  if (len(values) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                  and math.isfinite(v) for v in values)):
    raise UserError(f"search.space: ({key!r}, {kind!r}, ...) needs two finite numbers, low and "
                    f'high; got {values!r}.')
  low, high = values
  if not low < high:
    raise UserError(f'search.space: the range of {key!r} is empty or inverted ({low} to '
                    f'{high}): give low < high.')
  if kind == 'log' and low <= 0:
    raise UserError(f"search.space: a 'log' range of {key!r} needs low > 0, got {low}; use "
                    "'uniform' for a range from 0.")
  for bound in values:
    _check_value(config, key, float(bound))


def _check_choices(config, key: str, values: tuple) -> None:
  if not values:
    raise UserError(f"search.space: ({key!r}, 'choice') lists no values: give at least one.")
  if len({repr(v) for v in values}) != len(values):
    raise UserError(f'search.space: the choices of {key!r} repeat a value: {values!r}.')
  for value in values:
    _check_value(config, key, value)


def _check_value(config, key: str, value) -> None:
  try:
    probe = config_lib.replaced(config, **{key: value})
  except (TypeError, ValueError, KeyError) as e:
    raise UserError(f'search.space: {key}={value!r} is not a value that key takes ({e}).') \
        from None
  try:
    config_checks.validate(probe)
  except UserError as e:
    raise UserError(f'search.space: {key}={value!r}: {e}') from None


def check(config) -> tuple[Param, ...]:
  """Checks the whole `search` section and returns the parsed space.

  Raises:
    UserError: naming the key and the fix.
  """
  s = config.search
  for name in ('trials', 'members', 'eta'):
    value = s[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise UserError(f'search.{name} must be an integer >= 1, got {value!r}.')
  if s.eta < 2:
    raise UserError(f'search.eta must be at least 2 (keep the best 1/eta at each rung), got '
                    f'{s.eta}.')
  if s.members > s.trials:
    raise UserError(f'search.members={s.members} is more trials per program than the '
                    f'{s.trials} of the search (search.trials): lower search.members.')
  if isinstance(s.min_epochs, bool) or not isinstance(s.min_epochs, int) or s.min_epochs < 0:
    raise UserError(f'search.min_epochs must be an integer >= 0 (0: train.epochs // eta^2), '
                    f'got {s.min_epochs!r}.')
  if s.min_epochs >= config.train.epochs and s.pruner != 'none':
    raise UserError(f'search.min_epochs={s.min_epochs} leaves no rung before the last of '
                    f'train.epochs={config.train.epochs}: lower it, or set search.pruner=none.')
  if s.pruner not in PRUNERS:
    raise UserError(f'search.pruner={s.pruner!r} is not one of {PRUNERS}.')
  if s.sampler not in SAMPLERS:
    raise UserError(f'search.sampler={s.sampler!r} is not one of {SAMPLERS}.')
  swept = [k for k in config_lib.SWEEPABLE + config_lib.SHAPE_CHANGING
           if config.sweep[k] is not None]
  if swept:
    raise UserError(f'the config sweeps {", ".join("sweep." + k for k in swept)}: a search '
                    'draws its trials itself. Put those keys in search.space instead.')
  return parse(config)


def min_epochs(config) -> int:
  """The first rung: `search.min_epochs`, or train.epochs // eta^2 (at least 1)."""
  return config.search.min_epochs or max(1, config.train.epochs // config.search.eta ** 2)


def rungs(config) -> tuple[int, ...]:
  """The epochs after which trials are reported to the pruner and judged: min_epochs *
  eta^k below train.epochs, then train.epochs itself (where the survivors complete)."""
  epochs = config.train.epochs
  if config.search.pruner == 'none':
    return (epochs,)
  points, e = [], min_epochs(config)
  while e < epochs:
    points.append(e)
    e *= config.search.eta
  return tuple(points) + (epochs,)


def chunk_epochs(points: tuple[int, ...]) -> int:
  """Epochs per compiled call: the largest that divides every stretch between rungs, so one
  program per member count serves the whole search."""
  return math.gcd(*(b - a for a, b in zip((0,) + points[:-1], points, strict=True)))


def trial_config(config, params: tuple[Param, ...], drawn: dict):
  """`config` with a trial's values (drawn: key -> what the study drew) set, ready to train
  one model: its search section left as it was."""
  return config_lib.replaced(config, **{p.key: p.value(drawn[p.key]) for p in params},
                             num_seeds=1)


def program_key(params: tuple[Param, ...], drawn: dict) -> tuple:
  """What trials must share to train in one program: their values of the non-member keys."""
  return tuple((p.key, drawn[p.key]) for p in params if not p.member)


def drawn_values(params: tuple[Param, ...], values: dict) -> dict:
  """Config values (key -> value) as the study stores them (a choice by its label)."""
  return {p.key: (p.labels()[p.values.index(values[p.key])] if p.kind == 'choice'
                  else float(values[p.key]))
          for p in params if p.key in values}
