"""The persistent compilation cache: where it goes, how to move or stop it, and that a broken
cache never breaks a run."""
import json
import os
import subprocess

import jax
import pytest

from conftest import PYTHON, ROOT, script_env
from rnnjax import compile_cache


def test_cache_folder_follows_xdg_and_the_environment_variable():
  env = {'XDG_CACHE_HOME': '/data/cache'}
  assert compile_cache.chosen_dir(env) == '/data/cache/rnnjax/jax'
  home = os.path.expanduser('~')
  assert compile_cache.chosen_dir({}) == os.path.join(home, '.cache', 'rnnjax', 'jax')
  assert compile_cache.chosen_dir({**env, 'RNNJAX_COMPILATION_CACHE': '/elsewhere'}) == '/elsewhere'
  for off in ('off', 'OFF', '0', 'false', ''):
    assert compile_cache.chosen_dir({'RNNJAX_COMPILATION_CACHE': off}) is None, off


@pytest.fixture
def no_session_cache():
  """JAX without the test session's cache folder, restored afterwards."""
  session = jax.config.jax_compilation_cache_dir
  jax.config.update('jax_compilation_cache_dir', None)
  yield
  jax.config.update('jax_compilation_cache_dir', session)


def test_unwritable_cache_folder_leaves_the_run_uncached(tmp_path, no_session_cache, caplog):
  blocker = tmp_path / 'a_file'
  blocker.write_text('not a folder')
  with caplog.at_level('WARNING'):
    got = compile_cache.enable({'RNNJAX_COMPILATION_CACHE': str(blocker / 'cache')})
  assert got is None, f'a cache under a file was enabled at {got}'
  assert jax.config.jax_compilation_cache_dir is None, 'JAX was pointed at an unusable cache'
  assert 'cannot be written' in caplog.text and 'RNNJAX_COMPILATION_CACHE' in caplog.text, \
      caplog.text


TRAIN = [os.path.join(ROOT, 'scripts', 'train.py'), '--config', 'configs/seed_gru.py',
         '--config.data.synthetic.num_days=20', '--config.model.hidden_sizes=(8,)',
         '--config.train.epochs=1']


def _train(workdir, cache):
  env = script_env(RNNJAX_COMPILATION_CACHE=str(cache))
  env.pop('JAX_COMPILATION_CACHE_DIR', None)  # the scripts' own set-up, not the test session's
  proc = subprocess.run([PYTHON, *TRAIN, '--workdir', str(workdir)], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, f'train.py exited {proc.returncode}:\n{proc.stderr[-3000:]}'
  assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
  with open(os.path.join(workdir, 'metrics.json')) as f:
    return json.load(f)


def test_corrupt_cache_entries_are_compiled_again_with_the_same_results(tmp_path):
  cache = tmp_path / 'cache'
  first = _train(tmp_path / 'first', cache)
  entries = [p for p in cache.rglob('*') if p.is_file() and not p.name.startswith('.')]
  assert entries, f'the run wrote nothing to its compilation cache {cache}'
  for path in entries:
    path.write_bytes(b'\x00not a compiled program' * 7)
  second = _train(tmp_path / 'second', cache)
  for key in ('val_rmse', 'val_mae', 'train_rmse', 'val_mse_scaled'):
    assert second[key] == first[key], (
        f'{key}: {second[key]} with a corrupt cache against {first[key]} with a good one')
