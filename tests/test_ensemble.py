"""Many seeds at once: vmapped members equal single runs, sweeps, sharding, ensemble outputs."""
import json
import os
import subprocess
import textwrap

import jax
import numpy as np
import pandas as pd
import pytest

from conftest import PYTHON, ROOT, read_events, script_env, tiny_config
from rnnjax import checkpoint as ckpt_lib
from rnnjax import data as data_lib
from rnnjax import ensemble, forecast, run, train, trained_run
from rnnjax import program as program_lib
from rnnjax.errors import UserError


_JITTED_TRAIN = {}  # {config as JSON: jit(make_train(config, data))}, traced once per config


def _single(config, seed, **hparams):
  """History and final params of a plain jit(train) run with `seed`.

  Seeds and hparams are arguments of the one jitted program of `config`: the single runs of
  several seeds and sweep values reuse it instead of tracing and compiling it again.
  """
  key = config.to_json_best_effort(sort_keys=True)
  if key not in _JITTED_TRAIN:
    _JITTED_TRAIN[key] = jax.jit(train.make_train(config, data_lib.prepare(config.data)))
  hp = train.default_hparams(config)
  hp.update({k: np.float32(v) for k, v in hparams.items()})
  state, history = _JITTED_TRAIN[key](jax.random.PRNGKey(seed), hp)
  return jax.device_get(history), jax.device_get(state.params)


def test_member_k_equals_single_run_with_seed_k():
  config = tiny_config(num_seeds=3)
  states, histories = ensemble.train_many(config, data_lib.prepare(config.data))
  config = tiny_config()
  for k in range(3):
    history, params = _single(config, k)
    np.testing.assert_allclose(histories['loss'][k], history['loss'], rtol=1e-5, atol=1e-7,
                               err_msg=f'member {k} loss history differs from the seed-{k} run')
    np.testing.assert_allclose(histories['val_loss'][k], history['val_loss'], rtol=1e-5,
                               atol=1e-7, err_msg=f'member {k} val_loss differs')
    for a, b in zip(jax.tree.leaves(states.params), jax.tree.leaves(params), strict=True):
      np.testing.assert_allclose(np.asarray(a)[k], b, rtol=1e-5, atol=1e-6,
                                 err_msg=f'member {k} params differ from the seed-{k} run')
  assert not np.allclose(histories['loss'][0], histories['loss'][1]), 'members 0 and 1 coincide'


def test_sweep_members_record_values_and_match_single_runs(tmp_path):
  config = tiny_config(num_seeds=2)
  config.sweep.learning_rate = (1e-3, 1e-2)
  config.sweep.dropout = (0.0, 0.2)
  metrics = run.train_and_evaluate(config, str(tmp_path / 'w'), progress=False)
  records = metrics['members']
  assert [r['learning_rate'] for r in records] == pytest.approx([1e-3, 1e-2])
  assert [r['dropout'] for r in records] == pytest.approx([0.0, 0.2])
  assert [r['seed'] for r in records] == [0, 1]
  history, _ = _single(tiny_config(), 1, learning_rate=1e-2, dropout=0.2)
  frame = pd.read_csv(tmp_path / 'w' / 'history.csv')
  np.testing.assert_allclose(frame['val_loss_member1'], history['val_loss'], rtol=1e-5,
                             err_msg='member 1 of the sweep is not the single run with its values')
  rows = read_events(tmp_path / 'w' / 'tensorboard')
  for k, rate in enumerate((1e-3, 1e-2)):
    for key in ('loss', 'val_loss', 'grad_norm'):
      logged = [v for tag, _, v in rows if tag == f'{key}/member{k}']
      np.testing.assert_array_equal(np.float32(logged), frame[f'{key}_member{k}'].to_numpy(
          np.float32), err_msg=f'event file {key}/member{k} vs history.csv')
    logged = [v for tag, _, v in rows if tag == f'learning_rate/member{k}']
    np.testing.assert_allclose(logged, [rate] * 3, rtol=1e-6,
                               err_msg=f'member {k}\'s learning rate in the event file')


def test_grid_sweep_expands_every_combination():
  config = tiny_config(num_seeds=2)
  config.sweep.grid = True
  config.sweep.learning_rate = (1e-3, 3e-3)
  config.sweep.weight_decay = (0.0, 0.1, 0.2)
  members = ensemble.plan_members(config)
  assert members.size == 12
  pairs = set(zip(members.hparams['learning_rate'].tolist(),
                  members.hparams['weight_decay'].tolist(), strict=True))
  assert len(pairs) == 6, f'grid combinations missing: {pairs}'
  assert list(members.seeds) == list(range(12))


@pytest.mark.parametrize('setup, words', [
    (lambda c: setattr(c, 'num_seeds', 0), 'num_seeds'),
    (lambda c: setattr(c.sweep, 'learning_rate', (1e-3, 2e-3, 3e-3)), 'sweep.learning_rate'),
    (lambda c: setattr(c.sweep, 'hidden_sizes', ((8,), (16,))), 'sweep.hidden_sizes'),
    (lambda c: setattr(c.sweep, 'window', (12, 24)), 'sweep.window'),
    (lambda c: setattr(c.sweep, 'learning_rate', (1e-3, -1.0)), 'learning_rate'),
])
def test_bad_ensemble_config_names_the_key(setup, words):
  config = tiny_config(num_seeds=2)
  setup(config)
  with pytest.raises(UserError, match=words.replace('.', r'\.')):
    ensemble.plan_members(config)


def test_ensemble_workdir_metrics_plots_and_predict(tmp_path):
  workdir = str(tmp_path / 'w')
  config = tiny_config(num_seeds=3)
  metrics = run.train_and_evaluate(config, workdir, progress=False)
  for key in ('val_rmse', 'val_mae', 'val_mse_scaled', 'baseline_persistence_rmse',
              'baseline_seasonal_naive_rmse', 'train_seconds', 'compile_seconds'):
    assert np.isfinite(metrics[key]), f'ensemble metrics.json lacks a finite {key}'
  assert len(metrics['members']) == 3
  member_rmse = [m['val_rmse'] for m in metrics['members']]
  assert metrics['member_val_rmse_mean'] == pytest.approx(np.mean(member_rmse))
  assert metrics['member_val_rmse_std'] == pytest.approx(np.std(member_rmse, ddof=1))

  # The ensemble forecast is the members' mean: recompute it from each extracted member.
  d = data_lib.prepare(config.data)
  frames = [forecast.forecast_frame(trained_run.load_run(workdir, member=k), d.timestamps,
                                    d.values_TF) for k in range(3)]
  whole = forecast.forecast_frame(trained_run.load_run(workdir), d.timestamps, d.values_TF)
  mean = np.mean([f['forecast'] for f in frames], axis=0)
  np.testing.assert_allclose(whole['forecast'], mean, rtol=1e-5, atol=1e-5)
  assert {'forecast_std', 'forecast_q0.1', 'forecast_q0.9'} <= set(whole.columns)
  assert np.all(whole['forecast_q0.1'] <= whole['forecast_q0.9'])
  val = whole.set_index('target_time').loc[d.timestamps[d.target_positions(d.val_starts)[:, 0]]]
  rmse = np.sqrt(np.mean((val['forecast'] - d.targets(d.val_starts)[:, 0]) ** 2))
  assert metrics['val_rmse'] == pytest.approx(rmse, rel=1e-4), 'val_rmse is not the mean forecast'
  for k in range(3):
    assert frames[k]['forecast'].notna().all()
    member_val = frames[k].set_index('target_time').loc[val.index, 'forecast']
    own = np.sqrt(np.mean((member_val - d.targets(d.val_starts)[:, 0]) ** 2))
    assert metrics['members'][k]['val_rmse'] == pytest.approx(own, rel=1e-4)

  state, meta = ckpt_lib.load_for_inference(workdir)
  assert all(np.asarray(leaf).shape[0] == 3 for leaf in jax.tree.leaves(state['params'])), \
      'the checkpoint does not hold the seed-stacked state'
  for name in ('history.csv', 'loss.png', 'predictions.png'):
    assert os.path.getsize(os.path.join(workdir, name)) > 0


_SHARDED_THEN_STOPPED = textwrap.dedent('''
    import json, sys
    import jax, numpy as np
    sys.path.insert(0, 'tests')
    from conftest import tiny_config
    from rnnjax import checkpoint, data as data_lib, ensemble, program as program_lib, run, train
    overrides = {k: tuple(v) if isinstance(v, list) else v
                 for k, v in json.loads(sys.argv[2]).items()}
    config = tiny_config(num_seeds=6, **overrides)
    program = program_lib.members_program(
        train.make_trainer(config, data_lib.prepare(config.data)), config,
        ensemble.plan_members(config))
    leaf = jax.tree.leaves(program.init())[0]
    print(json.dumps({'devices': jax.device_count(), 'shape': leaf.shape,
                      'used': len(leaf.sharding.device_set),
                      'spec': str(leaf.sharding.spec)}), flush=True)
    save = checkpoint.Checkpointer.save
    def save_then_stop(self, epoch, *args, **kwargs):
      save(self, epoch, *args, **kwargs)
      if epoch == 2:
        sys.exit(7)
    checkpoint.Checkpointer.save = save_then_stop
    run.train_and_evaluate(config, sys.argv[1], progress=False)
''')


def test_sharded_run_stopped_then_resumed_on_one_device_equals_an_unsharded_run(tmp_path):
  """6 members on 4 forced host devices (padded to 8), stopped after their second epoch's
  checkpoint, resume on this process's single device and end equal to the same run on one
  device throughout: sharded epochs equal unsharded ones, and a checkpoint moves between device
  counts. The members forecast 6 steps at once with calendar inputs, the largest shapes a
  member carries."""
  overrides = {'data.multi_step': True, 'data.horizon': 6, 'data.calendar': ('hour_of_day',)}
  workdir = str(tmp_path / 'moved')
  proc = subprocess.run(
      [PYTHON, '-c', _SHARDED_THEN_STOPPED, workdir, json.dumps(overrides)], cwd=ROOT,
      capture_output=True, text=True, timeout=300,
      env=script_env(XLA_FLAGS='--xla_force_host_platform_device_count=4'))
  assert proc.returncode == 7, (
      f'the 4-device run did not stop after epoch 2:\n{proc.stderr[-3000:]}')
  info = json.loads(proc.stdout.strip().splitlines()[-1])
  assert info['devices'] == 4 and info['used'] == 4, f'not sharded over 4 devices: {info}'
  assert info['shape'][0] == 8, f'6 members should be padded to 8 on 4 devices: {info}'
  assert 'members' in info['spec']

  config = tiny_config(num_seeds=6, **overrides)
  assert config.train.epochs == 3 and config.train.checkpoint_every == 1
  resumed = run.train_and_evaluate(config, workdir, progress=False)
  plain_dir = str(tmp_path / 'plain')
  plain = run.train_and_evaluate(config, plain_dir, progress=False)
  for a, b in zip(resumed['members'], plain['members'], strict=True):
    assert a['val_mse_scaled'] == pytest.approx(b['val_mse_scaled'], rel=1e-5), \
        f'member {a["member"]} resumed on 1 device differs from the uninterrupted run'
  moved, _ = ckpt_lib.load_for_inference(workdir)
  reference, _ = ckpt_lib.load_for_inference(plain_dir)
  for x, y in zip(jax.tree.leaves(moved['params']), jax.tree.leaves(reference['params']),
                  strict=True):
    assert np.asarray(x).shape == np.asarray(y).shape
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6,
                               err_msg='sharded-then-resumed params differ from the unsharded run')
  h1 = pd.read_csv(os.path.join(workdir, 'history.csv'))
  h2 = pd.read_csv(os.path.join(plain_dir, 'history.csv'))
  np.testing.assert_allclose(h1.to_numpy(), h2.to_numpy(), rtol=1e-5,
                             err_msg='history of the sharded epochs differs from the unsharded run')


def test_two_process_run_equals_single_process_run(tmp_path):
  """scripts/train.py --distributed on 2 local processes x 2 devices (jax.distributed, gloo)."""
  workdir = str(tmp_path / 'multi')
  overrides = ['--config.num_seeds=5', '--config.train.epochs=2',
               '--config.data.synthetic.num_days=20', '--config.model.hidden_sizes=(8,)']
  port = 20000 + os.getpid() % 20000
  procs = [subprocess.Popen(
      [PYTHON, 'scripts/train.py', '--config', 'configs/seed_gru.py', '--workdir', workdir,
       *overrides, '--distributed', f'--coordinator_address=127.0.0.1:{port}',
       '--num_processes=2', f'--process_id={i}'],
      cwd=ROOT, env=script_env(XLA_FLAGS='--xla_force_host_platform_device_count=2'),
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
  outputs = [p.communicate(timeout=300) for p in procs]
  for p, (_, err) in zip(procs, outputs, strict=True):
    assert p.returncode == 0, err[-3000:]

  config = tiny_config(**{'num_seeds': 5, 'train.epochs': 2, 'model.hidden_sizes': (8,),
                          'train.checkpoint_every': 10})
  single = run.train_and_evaluate(config, str(tmp_path / 'single'), progress=False)
  multi = json.load(open(os.path.join(workdir, 'metrics.json')))
  for a, b in zip(multi['members'], single['members'], strict=True):
    assert a['val_mse_scaled'] == pytest.approx(b['val_mse_scaled'], rel=1e-5), \
        f'member {a["member"]} differs between the 2-process and the 1-process run'


def test_member_groups_equal_all_members_at_once():
  """Members trained in vmapped groups of 3 (4 members: a group and a remainder) equal the same
  members vmapped all at once. (One at a time, the CPU default, is what the other ensemble
  tests compare with single runs.)"""
  histories = {}
  for size in (4, 3):
    config = tiny_config(**{'num_seeds': 4, 'ensemble_vmap_size': size, 'train.epochs': 2})
    data = data_lib.prepare(config.data)
    program = program_lib.members_program(train.make_trainer(config, data), config,
                                    ensemble.plan_members(config))
    _, history = program.run(program.init(), config.train.epochs)
    histories[size] = jax.device_get(history)
  np.testing.assert_allclose(histories[3]['val_loss'], histories[4]['val_loss'], rtol=1e-5,
                             err_msg='groups of 3 differ from all 4 members at once')


_TUTORIAL_ENSEMBLE_INIT = textwrap.dedent('''
    import json, sys
    import jax
    from rnnjax import config as config_lib, data as data_lib, devices, ensemble, train
    from rnnjax import program as program_lib
    config = config_lib.override(config_lib.default_config(), {'num_seeds': 16})
    devices.use_every_cpu_core(config)
    trainer = train.make_trainer(config, data_lib.prepare(config.data))
    program = program_lib.members_program(trainer, config, ensemble.plan_members(config))
    for _ in range(3):
      jax.block_until_ready(program.init())
    print(json.dumps({'devices': jax.device_count()}))
''')


def test_tutorial_ensemble_initialises_on_every_core_without_hanging():
  """16 tutorial-sized members initialised on one CPU device per core. Batched over members,
  the orthogonal initializer's QR blocked XLA:CPU's thread pool for good (cells.RECURRENT_INIT
  runs it member by member); a hang shows here as a timeout."""
  proc = subprocess.run([PYTHON, '-c', _TUTORIAL_ENSEMBLE_INIT], cwd=ROOT, capture_output=True,
                        text=True, timeout=180, env=script_env())
  assert proc.returncode == 0, proc.stderr[-3000:]
  devices = json.loads(proc.stdout.strip().splitlines()[-1])['devices']
  assert devices == len(os.sched_getaffinity(0)), f'{devices} devices, not one per core'


_DEVICES_AFTER = textwrap.dedent('''
    import sys
    import jax
    from rnnjax import config as config_lib, devices, ensemble
    config = config_lib.override(config_lib.default_config(), {'num_seeds': int(sys.argv[1])})
    devices.use_every_cpu_core(config)
    print(jax.device_count())
''')


@pytest.mark.parametrize('num_seeds,xla_flags,want', [
    (1, '', 1),  # a single run keeps one device
    (4, '--xla_force_host_platform_device_count=3', 3),  # the user's count wins
])
def test_use_every_cpu_core_leaves_single_runs_and_user_settings_alone(num_seeds, xla_flags,
                                                                        want):
  proc = subprocess.run([PYTHON, '-c', _DEVICES_AFTER, str(num_seeds)], cwd=ROOT,
                        capture_output=True, text=True, timeout=120,
                        env=script_env(XLA_FLAGS=xla_flags))
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert int(proc.stdout.strip().splitlines()[-1]) == want


def test_member_keys_are_the_keys_a_single_run_of_each_seed_draws():
  seeds = np.array([0, 1, 7, 12345, 2**31 - 1])
  want = np.stack([np.asarray(jax.random.PRNGKey(int(s))) for s in seeds])
  np.testing.assert_array_equal(ensemble.member_keys(seeds), want,
                                err_msg='member_keys against PRNGKey seed by seed')
