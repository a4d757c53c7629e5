"""The command-line helpers: a repeated `--config.KEY` flag takes its last value; a script's
quick exit keeps its exit code, its output and its atexit handlers."""
import os
import subprocess
import sys

from absl import flags
from ml_collections import config_flags

from conftest import PYTHON, ROOT, script_env
from rnnjax import errors


def _parse(argv, monkeypatch):
  """The config that scripts/train.py's flags would give for `argv`, through config_flags
  (which reads the override flags to define from sys.argv)."""
  argv = ['train.py', f'--config={os.path.join(ROOT, "configs", "seed_gru.py")}', *argv]
  monkeypatch.setattr(sys, 'argv', argv)
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_file('config', None, 'config file', flag_values=flag_values,
                                  lock_config=True)
  flag_values(errors.last_config_value_wins(argv))
  return flag_values.config


def test_repeated_tuple_override_takes_the_last_value(monkeypatch):
  config = _parse(['--config.model.hidden_sizes=(8,)', '--config.model.hidden_sizes=(4,4)'],
                  monkeypatch)
  assert tuple(config.model.hidden_sizes) == (4, 4), (
      f'two hidden_sizes overrides gave {config.model.hidden_sizes}, not the last one')
  config = _parse(['--config.model.hidden_sizes', '(8,)', '--config.train.epochs=2',
                   '--config.model.hidden_sizes', '(16,)'], monkeypatch)
  assert tuple(config.model.hidden_sizes) == (16,), config.model.hidden_sizes
  assert config.train.epochs == 2


def test_repeated_scalar_override_and_other_flags_are_kept_in_order():
  argv = ['train.py', '--config=c.py', '--config.train.epochs=3', '--workdir', 'w',
          '--config.train.epochs=5', '--overwrite']
  assert errors.last_config_value_wins(argv) == [
      'train.py', '--config=c.py', '--workdir', 'w', '--config.train.epochs=5', '--overwrite']
  flag_without_value = ['--config.train.skip_nonfinite_updates', '--config.train.epochs=1']
  assert errors.last_config_value_wins(flag_without_value) == flag_without_value


_EXIT_NOW = """
import atexit, sys
from rnnjax import errors
atexit.register(lambda: open(sys.argv[1], 'w').write('atexit ran'))
print('no newline yet', end='')
print('on stderr', end='', file=sys.stderr)
errors.exit_now(5)
print('after exit_now')
"""


def test_exit_now_keeps_code_output_and_atexit_handlers(tmp_path):
  marker = tmp_path / 'marker'
  proc = subprocess.run([PYTHON, '-c', _EXIT_NOW, str(marker)], cwd=ROOT, env=script_env(),
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 5, f'exit code {proc.returncode}, expected 5:\n{proc.stderr}'
  assert proc.stdout == 'no newline yet', f'unflushed or extra stdout: {proc.stdout!r}'
  assert proc.stderr.endswith('on stderr'), f'unflushed stderr: {proc.stderr!r}'
  assert marker.read_text() == 'atexit ran', 'exit_now skipped the atexit handlers'


# (script, arguments after the script, words stderr must hold). Each exits before JAX loads.
_BAD_COMMAND_LINES = {
    'unknown_key': ('train.py', ['--config', 'configs/seed_gru.py', '--workdir', '{w}',
                                 '--config.train.epoch=3'],
                    ["unknown config key: 'epoch'", 'Did you mean "epochs"']),
    'not_an_integer': ('train.py', ['--config', 'configs/seed_gru.py', '--workdir', '{w}',
                                    '--config.train.epochs=ten'],
                       ["--config.train.epochs=ten: invalid literal for int() with base 10: 'ten'"]),
    'stray_argument_train': ('train.py', ['--config', 'configs/seed_gru.py', '--workdir', '{w}',
                                          'stray'], ["unexpected argument(s) ['stray']"]),
    'stray_argument_backtest': ('backtest.py', ['--config', 'configs/seed_gru.py', '--workdir',
                                                '{w}', 'x', 'y'],
                                ["unexpected argument(s) ['x', 'y']"]),
    'stray_argument_predict': ('predict.py', ['--workdir', '{w}', '--csv', 'a.csv', '--out',
                                              'b.csv', 'extra'],
                               ["unexpected argument(s) ['extra']"]),
    'missing_config_file': ('train.py', ['--config', 'configs/absent.py', '--workdir', '{w}'],
                            ['could not load the --config file',
                             "No such file or directory: 'configs/absent.py'"]),
}


def test_bad_command_lines_say_what_was_wrong_in_a_few_lines(tmp_path):
  procs = {}
  for name, (script, args, _) in _BAD_COMMAND_LINES.items():
    args = [a.format(w=tmp_path / name) for a in args]
    procs[name] = subprocess.Popen([PYTHON, os.path.join(ROOT, 'scripts', script), *args],
                                   cwd=ROOT, env=script_env(), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
  for name, proc in procs.items():
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, f'{name}: exit {proc.returncode}, expected 2:\n{err[-2000:]}'
    for words in _BAD_COMMAND_LINES[name][2]:
      assert words in err, f'{name}: stderr lacks {words!r}:\n{err[-2000:]}'
    assert '\\' not in err, f'{name}: stderr shows escaped quotes or newlines:\n{err}'
    assert 'Traceback' not in err and len((out + err).splitlines()) <= 3, (
        f'{name}: more than a message and a hint:\n{out}{err}')
    assert not (tmp_path / name).exists(), f'{name}: a bad command line created the workdir'
