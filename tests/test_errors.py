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
