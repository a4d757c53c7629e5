"""One global model for many hourly series in one long-format CSV file: the next 24 hours of each.

  python scripts/train.py --config configs/multiseries.py --workdir runs/multiseries \
    --config.data.path=stations.csv --config.data.id_column=station \
    --config.data.target=temperature

The file has one row per series and timestamp (`station,time,temperature,...`); each series is
sorted, checked and scaled on its own (its scaler fit on its own training part), windows never
cross from one series into another, and the validation part is the last 20% of every series'
windows. A series too short for a training and a validation window is left out with a warning.
Minibatches draw uniformly over the windows of all series, so a longer series weighs more
(`--config.train.steps_per_epoch=N --config.data.sample=series` weighs every series alike; the
README's "Large panels" says more).
The model and training are configs/multistep.py's; metrics.json adds `per_series`.
"""
from rnnjax.config import default_config


def get_config():
  config = default_config()
  config.data.source = 'csv'
  config.data.id_column = 'series'
  config.data.window = 24
  config.data.horizon = 24
  config.data.multi_step = True
  config.data.calendar = ('hour_of_day', 'day_of_week')
  config.data.season = 24
  config.model.normalize = 'last'
  config.model.highway = 24
  config.train.early_stopping_patience = 5
  config.num_seeds = 5
  return config
