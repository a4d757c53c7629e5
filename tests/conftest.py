"""Shared test settings: loud shape errors and a small, fast config."""
import os
import sys

import jax
import pytest

jax.config.update('jax_numpy_rank_promotion', 'raise')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(**overrides):
  """The tutorial config shrunk to train in a second or two: 20 days, GRU (8, 8), 3 epochs.

  overrides: dotted keys, e.g. tiny_config(**{'train.epochs': 5}).
  """
  from rnnjax.config import default_config
  c = default_config()
  c.data.synthetic.num_days = 20
  c.model.hidden_sizes = (8, 8)
  c.train.epochs = 3
  c.train.checkpoint_every = 1
  for key, value in overrides.items():
    node = c
    *path, last = key.split('.')
    for p in path:
      node = node[p]
    node[last] = value
  return c


@pytest.fixture
def config():
  return tiny_config()


def script_env(**extra):
  """Environment for running scripts/*.py in a subprocess with this checkout importable."""
  env = dict(os.environ)
  env['PYTHONPATH'] = ROOT + os.pathsep + env.get('PYTHONPATH', '')
  env.setdefault('JAX_PLATFORMS', 'cpu')
  env.update(extra)
  return env


PYTHON = sys.executable
