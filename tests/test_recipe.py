"""configs/recipe.py: one command for a series of any time step, scored on a test part.

The recipe is shrunk (one epoch, a small GRU, two seeds) so that each run takes seconds; what is
checked is that the same config reads each time step's own lags and season (half-hourly steps:
tests/test_lags.py), keeps a test part and reports it against the three baselines.
"""
import json
import subprocess

import numpy as np
import pandas as pd
import pytest

from conftest import PYTHON
from conftest import ROOT
from conftest import script_env

SHRINK = ('--config.train.epochs=1', '--config.model.hidden_sizes=(8,)', '--config.num_seeds=2')


def _csv(path, freq, n, period):
  rng = np.random.default_rng(0)
  times = pd.date_range('2024-01-01', periods=n, freq=freq)
  # A wandering level makes the nearest season the best seasonal-naive forecast: a pure cycle
  # would tie with its multiples (a day and a week of hours).
  level = np.cumsum(rng.normal(0, 0.3, n))
  values = 10 + level + 4 * np.sin(2 * np.pi * np.arange(n) / period) + rng.normal(0, 0.3, n)
  pd.DataFrame({'time': times, 'load': values}).to_csv(path, index=False)
  return str(path)


@pytest.mark.parametrize('freq, n, period, lags, season', [
    ('h', 24 * 7 * 6, 24, [24, 48, 168], 24),
    ('D', 3 * 365, 7, [7, 14, 28, 364], 7),
])
def test_the_recipe_reads_the_lags_and_season_of_each_time_step(tmp_path, freq, n, period, lags,
                                                                  season):
  workdir = tmp_path / 'w'
  result = subprocess.run(
      [PYTHON, 'scripts/train.py', '--config', 'configs/recipe.py', '--workdir', str(workdir),
       f'--config.data.path={_csv(tmp_path / "s.csv", freq, n, period)}',
       '--config.data.target=load', *SHRINK],
      cwd=ROOT, env=script_env(), capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  saved = json.loads((workdir / 'config.json').read_text())
  assert saved['data']['lags'] == lags, f'{freq}: read the lags {saved["data"]["lags"]}'
  assert saved['data']['season'] == season, f'{freq}: picked the season {saved["data"]["season"]}'
  verdict = result.stdout.strip().splitlines()[-2]
  assert verdict.startswith('test_rmse ') and 'linear ridge' in verdict, verdict
  metrics = json.loads((workdir / 'metrics.json').read_text())
  printed = json.loads(result.stdout.strip().splitlines()[-1])
  assert printed['test_rmse'] == round(metrics['test_rmse'], 4), 'the printed test score is ' \
      'not the written one'
  test_points = int(0.2 * n)
  first = pd.Timestamp(metrics['test_start'])
  expected = pd.date_range('2024-01-01', periods=n, freq=freq)[n - test_points]
  assert first == expected, f'{freq}: the test part starts at {first}, not {expected}'
