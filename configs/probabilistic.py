"""Forecast distributions for an hourly series: configs/hourly.py's recipe with a quantile head
and no dropout.

  python scripts/train.py --config configs/probabilistic.py --workdir runs/quantile \
    --config.data.path=weather.csv --config.data.target=temperature
  python scripts/backtest.py --config configs/probabilistic.py --workdir runs/quantile_bt \
    --config.data.path=weather.csv --config.backtest.folds=8 --config.num_seeds=4

The 0.1 / 0.5 / 0.9 quantiles of y[t + 13] (the 80% central interval); the gaussian head is
--config.model.head=gaussian. Dropout is off: the spread a head learns under dropout covers the
dropout's own noise, which is gone when it forecasts, and its intervals come out too wide
(97-100% coverage for a nominal 80% on the tutorial's series, docs/distributions.md). The
per-window normalisation of configs/hourly.py keeps the median right where the level leaves
the training range, which a calibrated interval needs as much as a good point forecast.
"""
from rnnjax.config import default_config


def get_config():
  config = default_config()
  config.data.source = 'csv'
  config.data.window = 24
  config.data.horizon = 13
  config.data.season = 24
  config.data.val_fraction = 0.2
  config.model.cell = 'gru'
  config.model.hidden_sizes = (24, 50, 24)
  config.model.activation = 'swish'
  config.model.dropout = 0.0
  config.model.normalize = 'last'
  config.model.highway = 24
  config.model.head = 'quantile'
  config.model.quantiles = (0.1, 0.5, 0.9)
  config.model.interval = 0.8
  config.train.epochs = 30
  config.train.batch_size = 32
  config.train.learning_rate = 1e-3
  config.train.early_stopping_patience = 5
  config.num_seeds = 5
  return config
