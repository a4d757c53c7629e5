"""scripts/linear_reference.py against ridge regression solved in closed form with NumPy."""
import json
import math
import subprocess

import numpy as np

from conftest import PYTHON, ROOT, script_env
from rnnjax.sources import synthetic_series

DAYS, WINDOW, HORIZON, VAL_FRACTION = 30, 24, 13, 0.2


def _ridge_rmse(x_fit, d_fit, x_eval, d_eval, alpha=1.0):
  """RMSE of ridge (intercept not penalised, as scikit-learn) fitted on one set, scored on one."""
  mean_x, mean_d = x_fit.mean(axis=0), d_fit.mean()
  xc = x_fit - mean_x
  w = np.linalg.solve(xc.T @ xc + alpha * np.eye(xc.shape[1]), xc.T @ (d_fit - mean_d))
  pred = (x_eval - mean_x) @ w + mean_d
  return float(np.sqrt(np.mean((pred - d_eval) ** 2)))


def test_linear_reference_matches_closed_form_ridge_on_the_runs_split():
  out = subprocess.run(
      [PYTHON, 'scripts/linear_reference.py', '--config', 'configs/seed_gru.py',
       f'--config.data.synthetic.num_days={DAYS}'],
      cwd=ROOT, env=script_env(), capture_output=True, text=True, timeout=300, check=False)
  assert out.returncode == 0, out.stderr
  got = json.loads(out.stdout.strip().splitlines()[-1])
  _, y = synthetic_series(num_days=DAYS)
  rows, deltas, lasts, targets = [], [], [], []
  for s in range(len(y) - WINDOW - HORIZON + 1):  # a plain loop over the windows
    last = y[s + WINDOW - 1]
    rows.append(y[s:s + WINDOW] - last)
    deltas.append(y[s + WINDOW - 1 + HORIZON] - last)
    lasts.append(last)
    targets.append(y[s + WINDOW - 1 + HORIZON])
  x, d = np.array(rows), np.array(deltas)
  n_train = math.floor(len(x) * (1 - VAL_FRACTION))
  train, val = slice(0, n_train), slice(n_train, None)
  want = {
      'ridge_fit_on_train_val_rmse': _ridge_rmse(x[train], d[train], x[val], d[val]),
      'ridge_fit_on_val_val_rmse': _ridge_rmse(x[val], d[val], x[val], d[val]),
      'baseline_persistence_rmse': float(np.sqrt(np.mean(
          (np.array(lasts)[val] - np.array(targets)[val]) ** 2))),
  }
  for key, value in want.items():
    assert abs(got[key] - value) < 1e-3, f'{key}: script {got[key]}, NumPy {value:.4f}'
  assert got['ridge_fit_on_val_val_rmse'] <= got['ridge_fit_on_train_val_rmse'], (
      'a fit on the scored windows themselves should not score worse than one on other windows')


def test_linear_reference_reports_a_config_mistake_without_a_traceback():
  out = subprocess.run(
      [PYTHON, 'scripts/linear_reference.py', '--config', 'configs/hourly.py'],
      cwd=ROOT, env=script_env(), capture_output=True, text=True, timeout=300, check=False)
  assert out.returncode == 2 and 'data.path is empty' in out.stderr, out.stderr
  assert 'Traceback' not in out.stderr, out.stderr
