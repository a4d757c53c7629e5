"""No silent recompiles: traces are counted across chunks of epochs and across calls."""
import jax
import numpy as np

from conftest import tiny_config
from rnnjax import data as data_lib
from rnnjax import ensemble, program as program_lib, train


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
  program = program_lib.single_program(trainer, config)
  state = program.init()
  for _ in range(4):
    state, _ = program.run(state, 2)
  assert count['traces'] == 1, f'4 chunks of 2 epochs traced run_epochs {count["traces"]} times'
  state, _ = program.run(state, 1)
  assert count['traces'] == 2, 'a chunk of a new length should trace exactly once more'


def test_ensemble_chunks_trace_once():
  config = tiny_config(num_seeds=3)
  trainer, count = _counting(train.make_trainer(config, data_lib.prepare(config.data)))
  program = program_lib.members_program(trainer, config, ensemble.plan_members(config))
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


_OPTIONS_VS_DEFAULT = '''
import json
import jax, numpy as np
from rnnjax import config as config_lib, data as data_lib, program as program_lib, train
# conftest's tiny config, without importing conftest (which sets an optimisation level)
config = config_lib.override(config_lib.default_config(), {
    'data.synthetic.num_days': 20, 'model.hidden_sizes': (8, 8), 'train.epochs': 3})
data = data_lib.prepare(config.data)
trainer = train.make_trainer(config, data)
program = program_lib.single_program(trainer, config)
_, history = program.run(program.init(), config.train.epochs)
_, plain = jax.jit(train.make_train(config, data))(jax.random.PRNGKey(config.train.seed))
print(json.dumps({'options': program_lib.compiler_options(),
                  'init_options': program_lib.compiler_options(True),
                  'program': np.asarray(history['val_loss']).tolist(),
                  'plain': np.asarray(plain['val_loss']).tolist()}))
'''


def test_cpu_compiler_options_change_speed_not_results():
  """Without an optimisation level in XLA_FLAGS (the tests set one), the run's programs compile
  at LLVM levels 1 (training) and 0, with the older kernel emitter where XLA has it (init);
  they train as XLA's defaults do."""
  import json
  import subprocess
  from conftest import PYTHON, ROOT, script_env
  env = script_env()
  env['XLA_FLAGS'] = ' '.join(f for f in env.get('XLA_FLAGS', '').split()
                              if 'xla_backend_optimization_level' not in f)
  proc = subprocess.run([PYTHON, '-c', _OPTIONS_VS_DEFAULT], cwd=ROOT, capture_output=True,
                        text=True, timeout=300, env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  assert out['options'] == {'xla_backend_optimization_level': 1}, out['options']
  # The older kernel emitter is an option of jaxlib 0.10's XLA:CPU; newer ones have dropped it.
  assert out['init_options'] in ({'xla_backend_optimization_level': 0},
                                 {'xla_backend_optimization_level': 0,
                                  'xla_cpu_use_fusion_emitters': False}), out['init_options']
  np.testing.assert_allclose(out['program'], out['plain'], rtol=1e-5,
                             err_msg='the run compiled at level 1/0 trains differently')


def test_compiler_options_leave_xla_flags_settings_alone(monkeypatch):
  """An LLVM level given in XLA_FLAGS applies: only the options it does not set are passed."""
  monkeypatch.setenv('XLA_FLAGS', '--xla_backend_optimization_level=2')
  assert program_lib.compiler_options() == {}, program_lib.compiler_options()
  assert 'xla_backend_optimization_level' not in program_lib.compiler_options(runs_once=True)
  monkeypatch.setenv('XLA_FLAGS', '')
  assert program_lib.compiler_options() == {'xla_backend_optimization_level': 1}


def test_unknown_xla_option_never_reaches_a_program(monkeypatch):
  """An option this XLA does not know is dropped before rnnjax's programs compile, and the run
  trains exactly as with XLA's defaults."""
  assert not program_lib.option_supported('cpu', 'xla_rnnjax_no_such_option', True), \
      'an option XLA does not have was reported as supported'
  assert program_lib.option_supported('cpu', 'xla_backend_optimization_level', 1), \
      'the LLVM level option, present in every XLA:CPU, was reported as missing'
  config = tiny_config(**{'train.epochs': 2})
  data = data_lib.prepare(config.data)
  trainer = train.make_trainer(config, data)
  _, reference = program_lib.single_program(trainer, config).run(
      program_lib.single_program(trainer, config).init(), 2)
  for piece in program_lib.CPU_OPTIONS:
    monkeypatch.setitem(program_lib.CPU_OPTIONS, piece,
                        {**program_lib.CPU_OPTIONS[piece], 'xla_rnnjax_no_such_option': True})
  assert 'xla_rnnjax_no_such_option' not in program_lib.compiler_options()
  assert 'xla_rnnjax_no_such_option' not in program_lib.compiler_options(runs_once=True)
  prog = program_lib.single_program(trainer, config)
  _, history = prog.run(prog.init(), 2)  # XLA refuses the whole compile if the option got in
  np.testing.assert_array_equal(np.asarray(history['loss']), np.asarray(reference['loss']),
                                err_msg='dropping an unknown option changed the training')
