"""scripts/benchmark.py: its timings go through the run's own program, its tables, bad input.

The full benchmark takes many minutes; these tests time a tiny config through the same
function every training section uses, in a subprocess (the script defines absl flags).
"""
import json
import os
import subprocess

import pytest

from conftest import PYTHON, ROOT, script_env

_TINY = '''
import json, sys
sys.path.insert(0, 'scripts')
from absl import flags
import benchmark
from rnnjax import config as config_lib, data as data_lib
flags.FLAGS(['benchmark'])
config = config_lib.override(config_lib.default_config(), {
    'data.synthetic.num_days': 20, 'model.hidden_sizes': (8, 8), 'train.epochs': 2})
row = benchmark.time_training(config, repeats=2)
row['efficiency'] = row['gflops'] / 100.0
results = {'device_kind': 'cpu', 'backend': 'cpu', 'num_devices': 1, 'jax': 'x', 'repeats': 2,
           'matmul_gflops': 100.0, 'tutorial': [row]}
data = data_lib.prepare(config.data)
print(benchmark.tables(results))
print(json.dumps({'row': row, 'train_windows': len(data.train_starts),
                  'epoch_flops': benchmark.epoch_flops(config, data),
                  'flops_per_window': [benchmark.count_flops_per_window(*shapes) for shapes in (
                      ('gru', (2,), 1, 3), ('lstm', (2, 3), 2, 4), ('simple', (5,), 1, 2))]}))
'''


def test_time_training_times_the_run_program_and_the_table_shows_it():
  proc = subprocess.run([PYTHON, '-c', _TINY], cwd=ROOT, env=script_env(), capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.strip().splitlines()
  out = json.loads(lines[-1])
  row = out['row']
  assert len(row['train_seconds_all']) == 2, row
  assert row['train_seconds'] > 0 and row['compile_seconds'] > 0, row
  assert row['epochs'] == 2 and row['members'] == 1, row
  windows_per_second = 2 * out['train_windows'] / row['train_seconds']
  assert abs(row['train_windows_per_second'] - windows_per_second) < 1e-6 * windows_per_second, (
      'windows per second do not match the epochs, windows and seconds reported')
  gflops = 2 * out['epoch_flops'] / row['train_seconds'] / 1e9
  assert abs(row['gflops'] - gflops) < 1e-6 * gflops, 'GFLOP/s do not match the FLOP count'
  # GRU, 1 feature, one layer of 2, window 3: per step 1*6 input + 2*6 recurrent MACs = 18,
  # x3 steps = 54, head 2 MACs -> 56 MACs = 112 FLOPs. LSTM, 2 features, layers (2, 3), window
  # 4: layer 0 per step 2*8 + 2*8 = 32 MACs, layer 1 2*12 + 3*12 = 60 MACs, x4 steps = 368,
  # head 3 -> 371 MACs = 742 FLOPs. Simple, 1 feature, (5,), window 2: per step 5 + 25 = 30
  # MACs, x2 = 60, head 5 -> 130 FLOPs.
  assert out['flops_per_window'] == [112, 742, 130], 'FLOPs per window differ from a hand count'
  table = '\n'.join(lines[:-1])
  assert '== tutorial' in table and 'train_seconds' in table, table
  assert f"{row['train_seconds']:.3g}" in table, f'the table lacks the training time:\n{table}'


@pytest.mark.parametrize('flag, message', [
    ('--only=tutorial,bogus', "unknown sections ['bogus']"),
    ('--repeats=0', '--repeats=0: 0 is not a positive integer'),
    ('--seed_counts=1,x', '--seed_counts takes positive whole numbers'),
    ('--cells=gru,gruu', '--cells takes names from'),
    ('--hidden_sizes=8,0', '--hidden_sizes takes positive whole numbers'),
])
def test_bad_flags_are_refused_without_a_traceback(tmp_path, flag, message):
  out = tmp_path / 'bench.json'
  proc = subprocess.run([PYTHON, os.path.join(ROOT, 'scripts', 'benchmark.py'), flag,
                         f'--out={out}'], cwd=ROOT, env=script_env(), capture_output=True,
                        text=True, timeout=120)
  assert proc.returncode != 0, f'{flag} was accepted'
  assert message in proc.stderr, proc.stderr[-2000:]
  assert 'Traceback' not in proc.stderr, proc.stderr[-2000:]
  assert not out.exists(), f'the benchmark refused {flag} but wrote its JSON'
