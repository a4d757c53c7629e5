"""scripts/fault_catalogue.py: its cases are many and distinct, its judge fails a case that ends
badly, and a sample of its cases ends well through the scripts."""
import functools
import importlib.util
import os
import subprocess
import sys

from conftest import PYTHON, ROOT, script_env

SAMPLE = ('window_0', 'stray_argument', 'workdir_in_use', 'csv_binary', 'backtest_zero_folds',
          'predict_out_in_the_run_config_json', 'predict_plot_unknown_format')


@functools.cache
def _catalogue():
  spec = importlib.util.spec_from_file_location(
      'fault_catalogue', os.path.join(ROOT, 'scripts', 'fault_catalogue.py'))
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module  # dataclasses look their module up there
  spec.loader.exec_module(module)
  return module


def test_the_catalogue_holds_at_least_150_distinct_cases():
  cases = _catalogue()._cases()
  names = [c.name for c in cases]
  assert len(names) == len(set(names)), 'two cases share a name'
  assert len(cases) >= 150, f'the catalogue holds {len(cases)} cases'
  commands = [tuple(c.args) for c in cases]
  assert len(commands) == len(set(commands)), 'two cases run the same command'
  assert all(c.words for c in cases), 'a case expects no words in the message'


def test_the_judge_fails_a_case_with_another_exit_code_or_message(tmp_path):
  catalogue = _catalogue()
  case = catalogue.Case('probe', catalogue.TRAIN + ['--config.data.window=0'], 0,
                        ('words no message holds',))
  (tmp_path / 'good.csv').write_text('time,temperature\n')
  (tmp_path / 'finished').mkdir()
  result = catalogue.run_case(case, str(tmp_path))
  assert not result['ok'], result
  assert 'exit code 2, expected 0' in result['problems'], result['problems']
  assert "stderr lacks 'words no message holds'" in result['problems'], result['problems']


def test_a_sample_of_the_catalogue_ends_well_through_the_scripts(tmp_path):
  proc = subprocess.run([PYTHON, os.path.join(ROOT, 'scripts', 'fault_catalogue.py'),
                         f'--only={",".join(SAMPLE)}', f'--out={tmp_path / "faults.json"}'],
                        cwd=ROOT, env=script_env(), capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, f'exit {proc.returncode}:\n{proc.stdout[-4000:]}{proc.stderr[-3000:]}'
  assert f'{len(SAMPLE)} passed, 0 failed' in proc.stdout, proc.stdout[-3000:]
