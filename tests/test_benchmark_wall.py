"""scripts/benchmark_wall.py: one round on a tiny config with a stand-in for the Keras script.

The stand-in is a shell script given as --keras_python: it prints the reference's line, so the
test needs no keras. The figures are not checked for speed, only for where they come from.
"""
import ast
import json
import os
import stat
import subprocess

import pytest

from conftest import PYTHON, ROOT, script_env

SCRIPT = os.path.join(ROOT, 'scripts', 'benchmark_wall.py')
TINY = ['--train_arg=--config.data.synthetic.num_days=20',
        '--train_arg=--config.model.hidden_sizes=(8,)', '--train_arg=--config.train.epochs=1']
COMMAND_NAMES = ('rnnjax first run', 'Keras reference', 'rnnjax second run', 'rnnjax predict')
TIMEOUT = 300


def _executable(path, text):
  path.write_text(text)
  path.chmod(path.stat().st_mode | stat.S_IXUSR)
  return str(path)


def _run(args, tmp_path):
  return subprocess.run([PYTHON, SCRIPT, f'--tmp={tmp_path}', *args], cwd=ROOT, env=script_env(),
                        capture_output=True, text=True, timeout=TIMEOUT)


def test_one_round_times_every_command_and_the_table_matches_the_json(tmp_path):
  calls = tmp_path / 'keras_calls.txt'
  fake_keras = _executable(tmp_path / 'fake_keras', (
      '#!/bin/sh\n'
      f'echo "$KERAS_BACKEND $*" >> {calls}\n'
      'sleep 0.3\n'
      'echo "backend=jax epochs=$2 fit_s=0.5 per_epoch_s=0.5 val_loss=0.1 val_rmse=0.7"\n'))
  keras_script = tmp_path / 'keras_seed.py'  # the stand-in never runs it; it must only exist
  keras_script.write_text('')
  out = tmp_path / 'results' / 'wall.json'
  proc = _run(['--rounds=1', '--warmup=0', f'--keras_python={fake_keras}', '--keras_epochs=1',
               f'--keras_script={keras_script}',
               f'--out={out}', *TINY], tmp_path)
  assert proc.returncode == 0, f'benchmark_wall.py exited with {proc.returncode}:\n' \
      f'{proc.stderr[-3000:]}'

  with open(out) as f:
    results = json.load(f)
  assert len(results['rounds']) == 1, f'one counted round expected: {results["rounds"]}'
  row = results['rounds'][0]
  assert sorted(row) == ['first', 'keras', 'predict', 'second'], f'commands timed: {sorted(row)}'
  for name, figures in row.items():
    assert figures['wall_seconds'] > 0, f'{name} has wall_seconds {figures["wall_seconds"]}'
  for name in ('first', 'second'):
    for key in ('compile_seconds', 'train_seconds'):
      assert isinstance(row[name].get(key), float), (
          f'the {name} run lacks {key} from metrics.json: {row[name]}')
  assert row['keras']['fit_s'] == 0.5, f'fit_s parsed as {row["keras"]["fit_s"]}'
  assert calls.read_text() == f'jax {keras_script} 1\n', (
      f'the Keras stand-in was called as {calls.read_text()!r}; expected KERAS_BACKEND=jax, the '
      'reference script and --keras_epochs, once')

  table = proc.stdout
  for name in COMMAND_NAMES:
    assert f'| {name} | wall_seconds |' in table, f'the table has no wall row for {name}:\n{table}'
  first, keras = row['first']['wall_seconds'], row['keras']['wall_seconds']
  second, predict = row['second']['wall_seconds'], row['predict']['wall_seconds']
  for line in (f'| Keras wall / rnnjax first-run wall | {keras / first:.2f} |',
               f'| Keras wall / rnnjax second-run wall | {keras / second:.2f} |',
               f'| rnnjax predict wall, median s | {predict:.2f} |'):
    assert line in table, f'expected {line!r} (from the JSON) in the table:\n{table}'
  assert results['ratios']['keras_over_first_wall'] == pytest.approx(keras / first)
  assert not [n for n in os.listdir(tmp_path) if n.startswith('benchmark_wall-')], (
          f'the temporary workdirs were left behind: {os.listdir(tmp_path)}')


def test_a_failing_command_stops_with_its_name_and_stderr(tmp_path):
  # Runs the real Python, except for scripts/train.py, which fails as a broken install would.
  fake_python = _executable(tmp_path / 'fake_python', (
      '#!/bin/sh\n'
      'case "$*" in *scripts/train.py*) echo "train exploded: no luck" >&2; exit 3;; esac\n'
      f'exec {PYTHON} "$@"\n'))
  out = tmp_path / 'wall.json'
  proc = _run(['--rounds=1', '--warmup=0', f'--python={fake_python}', f'--out={out}'], tmp_path)
  assert proc.returncode == 1, f'exit code {proc.returncode}; stderr:\n{proc.stderr[-3000:]}'
  assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
  for part in ('the rnnjax first run command failed', 'scripts/train.py', 'exit code 3',
               'train exploded: no luck'):
    assert part in proc.stderr, f'{part!r} missing from the message:\n{proc.stderr[-3000:]}'
  assert not out.exists(), 'a benchmark that failed wrote results'
  assert not [n for n in os.listdir(tmp_path) if n.startswith('benchmark_wall-')], (
      f'the temporary workdirs were left behind: {os.listdir(tmp_path)}')


@pytest.mark.parametrize('flag, named', [('--rounds=0', '--rounds'),
                                         ('--keras_python=/no/such/python', '--keras_python'),
                                         ('--tmp=/no/such/folder', '--tmp')])
def test_bad_flags_are_one_line_errors(flag, named, tmp_path):
  proc = subprocess.run([PYTHON, SCRIPT, flag], cwd=ROOT, env=script_env(), capture_output=True,
                        text=True, timeout=TIMEOUT)
  assert proc.returncode == 1 and 'Traceback' not in proc.stderr, (
      f'{flag}: exit code {proc.returncode}, stderr:\n{proc.stderr[-3000:]}')
  assert named in proc.stderr, f'{flag}: the error does not name {named}:\n{proc.stderr}'


def test_the_script_imports_neither_jax_nor_rnnjax():
  # It only starts processes: importing JAX would add seconds to its own start and hold memory
  # the timed commands compete for.
  with open(SCRIPT) as f:
    tree = ast.parse(f.read())
  imported = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      imported.update(alias.name.split('.')[0] for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      imported.add((node.module or '').split('.')[0])
  assert not imported & {'jax', 'jaxlib', 'rnnjax', 'flax'}, f'the script imports {imported}'
