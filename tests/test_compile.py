"""No silent recompiles: traces are counted across chunks of epochs and across calls."""
import jax
import numpy as np

from conftest import tiny_config
from rnnjax import data as data_lib
from rnnjax import ensemble, run, train


def _counting(trainer):
  """The trainer with run_epochs counting how often JAX traces it."""
  count = {'traces': 0}

  def run_epochs(state, dd, n):
    count['traces'] += 1
    return trainer.run_epochs(state, dd, n)
  return trainer._replace(run_epochs=run_epochs), count


def test_chunks_of_equal_length_trace_once():
  config = tiny_config()
  trainer, count = _counting(train.make_trainer(config, data_lib.prepare(config.data)))
  program = run.single_program(trainer, config)
  state = program.init()
  for _ in range(4):
    state, _ = program.run(state, 2)
  assert count['traces'] == 1, f'4 chunks of 2 epochs traced run_epochs {count["traces"]} times'
  state, _ = program.run(state, 1)
  assert count['traces'] == 2, 'a chunk of a new length should trace exactly once more'


def test_ensemble_chunks_trace_once():
  config = tiny_config(num_seeds=3)
  trainer, count = _counting(train.make_trainer(config, data_lib.prepare(config.data)))
  program = ensemble.make_program(trainer, config, ensemble.plan_members(config))
  state = program.init()
  for _ in range(3):
    state, _ = program.run(state, 1)
  assert count['traces'] == 1, f'ensemble chunks traced {count["traces"]} times'


def test_jitted_train_traces_once_across_keys():
  config = tiny_config(**{'train.epochs': 1})
  data = data_lib.prepare(config.data)
  count = {'traces': 0}
  inner = train.make_train(config, data)

  def counted(key):
    count['traces'] += 1
    return inner(key)
  jitted = jax.jit(counted)
  losses = [np.asarray(jitted(jax.random.PRNGKey(seed))[1]['loss']) for seed in range(3)]
  assert count['traces'] == 1, f'3 calls with the same shapes traced {count["traces"]} times'
  assert not np.array_equal(losses[0], losses[1]), 'different keys gave the same run'
