"""scripts/device_check.sh: its CPU smoke run leaves every section's JSON and log, and a bad
command line is refused with the usage line.

The accelerator run itself needs an accelerator; --cpu-smoke runs the same steps on a tiny task.
"""
import json
import os
import subprocess

import pytest

from conftest import PYTHON, ROOT, script_env

SCRIPT = os.path.join(ROOT, 'scripts', 'device_check.sh')
USAGE = 'usage: scripts/device_check.sh [--cpu-smoke] OUTDIR'
SECTIONS = ('tutorial', 'seeds', 'seqlen', 'cells', 'dataparallel')


def test_cpu_smoke_writes_every_section_and_the_devices(tmp_path):
  out = tmp_path / 'check'
  proc = subprocess.run(['bash', SCRIPT, '--cpu-smoke', str(out)], cwd=tmp_path,
                        env=script_env(PYTHON=PYTHON), capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
  assert 'backend cpu, 1 devices (cpu): [CpuDevice(id=0)]' in proc.stdout, proc.stdout[:2000]
  results = {}
  for section in SECTIONS:
    assert (out / f'{section}.log').stat().st_size > 0, f'{section}.log is empty'
    results[section] = json.loads((out / f'{section}.json').read_text())
    assert set(results[section]) & set(SECTIONS) == {section}, (
        f'{section}.json holds sections {sorted(set(results[section]) & set(SECTIONS))}')
    assert results[section]['repeats'] == 1, results[section]['repeats']
  assert [row['members'] for row in results['seeds']['seeds']] == [1, 2]
  assert [row['window'] for row in results['seqlen']['seqlen']] == [24, 96, 384]
  assert [(row['cell'], row['implementation']) for row in results['cells']['cells']] == [
      ('gru', 'fused'), ('gru', 'flax')]
  parallel = results['dataparallel']['dataparallel']
  assert [row['batch'] for row in parallel] == [64] * len(parallel) and [
      row['devices'] for row in parallel][:1] == [1], parallel
  assert all(row.get('cores_busy', -1) >= 0 for row in parallel), 'no cores_busy in the rows'
  tutorial, = results['tutorial']['tutorial']
  assert tutorial['members'] == 1 and tutorial['epochs'] == 1, tutorial
  # nvidia-smi is a step only where it is installed.
  summary = [line for line in (out / 'summary.txt').read_text().splitlines()
             if 'nvidia-smi' not in line]
  assert [line.split()[:2] for line in summary] == [
      ['ok', f'{step}:'] for step in ('devices',) + SECTIONS], summary


@pytest.mark.parametrize('args, message', [
    (['--cpu-smoke'], ''),
    (['--gpu', 'out'], 'unknown flag --gpu'),
    (['out', 'other'], 'one OUTDIR only, got out and other'),
])
def test_a_bad_command_line_prints_the_usage_and_exits_2(tmp_path, args, message):
  proc = subprocess.run(['bash', SCRIPT, *args], cwd=tmp_path, env=script_env(PYTHON=PYTHON),
                        capture_output=True, text=True, timeout=60)
  assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
  assert USAGE in proc.stderr and message in proc.stderr, proc.stderr
  assert 'Traceback' not in proc.stdout + proc.stderr, proc.stderr
  assert list(tmp_path.iterdir()) == [], 'a refused command line left files behind'
