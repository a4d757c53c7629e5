r"""How far a linear model gets on a config's windows: a reference for what the data allows.

  python scripts/linear_reference.py --config configs/hourly.py \
    --config.data.path=weather.csv --config.data.target=temperature

Fits scikit-learn's Ridge on the same windows and split as a run of the config (inputs: the
window's values minus its last target value; output: the target minus that value), in the
series' own units, and prints one JSON line with the validation RMSE of
  - ridge_fit_on_train: fitted on the training windows, as a model would be;
  - ridge_fit_on_val: fitted on the validation windows themselves, an optimistic bound on what
    any linear function of the window can score there;
next to both naive baselines. When even the second is no better than persistence, the window
holds little that predicts the target beyond its last value.
"""
from __future__ import annotations

import json

import numpy as np
from absl import app
from absl import flags
from ml_collections import config_flags
from sklearn import linear_model

from rnnjax import config_checks
from rnnjax import data as data_lib
from rnnjax import dataset as dataset_lib
from rnnjax import errors
from rnnjax import metrics
from rnnjax import seasons
from rnnjax import windows

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file with get_config().')
flags.mark_flags_as_required(['config'])


def _design(data: dataset_lib.Dataset, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                    np.ndarray]:
  """(inputs [N, window * F] minus the last target value, target offsets [N, S], last values
  [N, 1])."""
  x_NWF, y_NS = windows.gather_windows(data.values_TF, starts, data.window, data.steps)
  last_N1 = x_NWF[:, -1:, 0]
  return (x_NWF - last_N1[:, :, None]).reshape(len(starts), -1), y_NS - last_N1, last_N1


def reference(config) -> dict:
  """Validation RMSE of ridge fitted on the training and on the validation windows."""
  data = data_lib.prepare(config.data)
  config = seasons.resolved_config(config, data)  # data.season='auto' as a run resolves it
  x_tr, d_tr, _ = _design(data, data.train_starts)
  x_va, d_va, last_va = _design(data, data.val_starts)
  y_va = data.targets(data.val_starts)
  results = {}
  for name, (x, d) in (('ridge_fit_on_train', (x_tr, d_tr)), ('ridge_fit_on_val', (x_va, d_va))):
    ridge = linear_model.Ridge(alpha=1.0).fit(x, d)
    forecast = ridge.predict(x_va).reshape(d_va.shape) + last_va
    results[f'{name}_val_rmse'] = round(metrics.rmse(forecast, y_va), 4)
  baselines = metrics.forecast_metrics(data, data.val_starts, np.zeros(y_va.shape),
                                       config.data.season, 'val')
  for key in ('baseline_persistence_rmse', 'baseline_seasonal_naive_rmse'):
    results[key] = round(baselines[key], 4)
  return results


def main(argv):
  del argv
  config = _CONFIG.value

  def run():
    config_checks.validate(config)
    print(json.dumps(reference(config)))
  errors.exit_on_user_error(run)


if __name__ == '__main__':
  app.run(main, flags_parser=errors.parse_flags_or_exit)
