"""The config is locked, validate() names the bad key, and JSON round-trips."""
import importlib.util
import json
import os

import pytest

from conftest import ROOT
from rnnjax import cells
from rnnjax import config as config_lib
from rnnjax import config_checks
from rnnjax.errors import UserError


def test_default_config_is_valid_and_is_the_tutorial_experiment():
  c = config_lib.default_config()
  config_checks.validate(c)
  assert (c.data.window, c.data.horizon, tuple(c.model.hidden_sizes), c.model.cell,
          c.model.activation, c.data.val_fraction, c.data.synthetic.num_days,
          c.data.synthetic.noise) == (24, 13, (24, 50, 24), 'gru', 'swish', 0.2, 200, 0.5), (
              'default_config drifted from the tutorial experiment')


@pytest.mark.parametrize('section,key', [('data', 'windw'), ('train', 'epoch'), (None, 'seeds')])
def test_default_config_is_locked(section, key):
  c = config_lib.default_config()
  node = c if section is None else c[section]
  with pytest.raises(AttributeError, match=key):
    setattr(node, key, 1)
  with pytest.raises(KeyError, match=key):
    node[key] = 1


def test_every_config_choice_exists_in_the_cells():
  for cell in config_lib.CELLS:
    assert cell in cells.GATES, f'config allows cell {cell!r} that rnnjax.cells does not build'
  for activation in config_lib.ACTIVATIONS:
    cells.activation_fn(activation)  # raises ValueError for an unknown one


INVALID = [
    ('data.window', 0), ('data.window', -3), ('data.horizon', 0), ('data.horizon', -1),
    ('model.hidden_sizes', (8, 0)), ('model.hidden_sizes', (-4,)), ('model.hidden_sizes', ()),
    ('train.epochs', 0), ('train.epochs', -1), ('train.batch_size', 0), ('train.batch_size', -8),
    ('model.cell', 'transformer'), ('model.activation', 'swishh'),
    ('data.val_fraction', 0.0), ('data.val_fraction', 1.0), ('data.val_fraction', -0.1),
    ('data.val_fraction', 1.5), ('model.implementation', 'cuda'), ('model.dropout', 1.0),
    ('train.learning_rate', 0.0), ('data.season', 0), ('num_seeds', 0),
    ('ensemble_vmap_size', -1),
    ('train.learning_rate', float('nan')), ('train.learning_rate', float('inf')),
    ('train.weight_decay', float('nan')), ('train.weight_decay', float('inf')),
    ('train.clip_norm', float('nan')), ('model.dropout', float('nan')),
    ('data.fill', 'backfill'), ('data.features', ('wind', 'wind')),
    ('data.path', 'weather.csv'), ('ensemble_quantiles', ()), ('ensemble_quantiles', (0.5,)),
    ('data.features', ('(dewpoint,humidity)',)), ('data.calendar', ('(hour_of_day,)',)),
    ('data.calendar', ('hour',)), ('data.calendar', ('month', 'month')),
    ('model.skip', 'drift'), ('model.normalize', 'std'), ('train.lr_schedule', 'step'),
    ('train.warmup_epochs', 30), ('train.warmup_epochs', -1),
    ('model.highway', -1), ('model.highway', 25),
    ('backtest.folds', 0), ('backtest.folds', -2), ('backtest.step', -1),
    ('backtest.test_length', -5),
]


@pytest.mark.parametrize('key,value', INVALID)
def test_validate_names_the_bad_key(key, value):
  c = config_lib.default_config()
  node = c
  *path, last = key.split('.')
  for p in path:
    node = node[p]
  node[last] = value
  with pytest.raises(UserError) as info:
    config_checks.validate(c)
  assert key in str(info.value), f'validate() error for {key}={value!r} does not name it: {info.value}'


def test_json_round_trip():
  c = config_lib.default_config()
  c.data.window = 12
  c.data.features = ('wind', 'pressure')
  c.model.hidden_sizes = (16, 8)
  c.model.cell = 'lstm'
  c.train.learning_rate = 3e-4
  c.sweep.learning_rate = (1e-3, 1e-2)
  c.ensemble_quantiles = (0.05, 0.5, 0.95)
  text = config_lib.to_json(c)
  json.loads(text)  # plain JSON
  back = config_lib.from_json(text)
  assert back.to_dict() == c.to_dict(), 'from_json(to_json(c)) differs from c'
  assert isinstance(back.model.hidden_sizes, tuple) and isinstance(back.sweep.learning_rate, tuple), (
      'sequences must come back as tuples, as default_config has them')
  assert config_lib.to_json(back) == text, 'to_json is not stable across a round trip'
  config_checks.validate(back)
  with pytest.raises(AttributeError):
    back.data.windw = 3  # still locked


def test_from_json_fills_missing_keys_from_defaults():
  back = config_lib.from_json(json.dumps({'data': {'window': 6}}))
  assert back.data.window == 6 and back.data.horizon == 13 and back.train.epochs == 30, (
      'from_json should lay a partial config over default_config()')


@pytest.mark.parametrize('name', sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, 'configs'))
                                        if f.endswith('.py')))
def test_every_config_file_passes_the_checks(name):
  spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, 'configs', f'{name}.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config_checks.validate(module.get_config())  # raises UserError naming the bad key


# (overrides, words the message must hold: the value and how to fix it)
HEAD_MISTAKES = [
    ({'model.head': 'beta'}, ["model.head='beta'", "('point', 'quantile', 'gaussian')"]),
    ({'model.quantiles': (0.1, 0.5, 1.0)}, ['holds 1.0', 'strictly between 0 and 1']),
    ({'model.quantiles': (0.0, 0.5)}, ['holds 0.0', 'strictly between 0 and 1']),
    ({'model.quantiles': (0.9, 0.5, 0.1)}, ['strictly increasing', '(0.1, 0.5, 0.9)']),
    ({'model.quantiles': (0.1, 0.5, 0.5, 0.9)}, ['each level once', '(0.1, 0.5, 0.9)']),
    ({'model.quantiles': ()}, ['model.quantiles is empty', '(0.1,0.5,0.9)']),
    ({'model.interval': 1.0}, ['model.interval=1.0', 'strictly between 0 and 1']),
    ({'model.interval': 0.0}, ['model.interval=0.0', 'strictly between 0 and 1']),
    ({'model.head': 'quantile', 'model.quantiles': (0.25, 0.5, 0.75)},
     ['lacks the bounds of the central 0.8 interval (0.1, 0.9)', 'add them to model.quantiles']),
    ({'model.head': 'quantile', 'model.interval': 0.9}, ['(0.05, 0.95)']),
]


@pytest.mark.parametrize('overrides,words', HEAD_MISTAKES,
                         ids=[str(o) for o, _ in HEAD_MISTAKES])
def test_head_settings_are_checked_with_the_value_and_the_fix(overrides, words):
  c = config_lib.override(config_lib.default_config(), overrides)
  with pytest.raises(UserError) as info:
    config_checks.validate(c)
  for word in words:
    assert word in str(info.value), f'{overrides}: the message lacks {word!r}: {info.value}'


@pytest.mark.parametrize('overrides', [
    {'model.head': 'quantile'},                                      # 0.1 is (1 - 0.8) / 2 +- 1e-16
    {'model.head': 'quantile', 'model.quantiles': (0.25, 0.5, 0.75), 'model.interval': 0.5},
    {'model.head': 'gaussian', 'model.quantiles': (0.25, 0.5, 0.75)},  # no bounds needed
    {'model.head': 'quantile', 'model.quantiles': (0.05, 0.95), 'model.interval': 0.9},
])
def test_head_settings_that_are_fine_pass(overrides):
  config_checks.validate(config_lib.override(config_lib.default_config(), overrides))


def test_a_probabilistic_head_with_dropout_is_warned_about():
  c = config_lib.default_config()
  assert config_checks.caveats(c) == [], 'the point head with dropout needs no warning'
  c.model.head = 'quantile'
  (caveat,) = config_checks.caveats(c)
  assert 'model.dropout=0.1' in caveat and '--config.model.dropout=0' in caveat, caveat
  c.model.dropout = 0.0
  assert config_checks.caveats(c) == []
