"""The next 24 hours at once from the last 24 hourly readings of a CSV series, with the hour of
day and the day of week as inputs known in advance.

  python scripts/train.py --config configs/multistep.py --workdir runs/multistep \
    --config.data.path=weather.csv --config.data.target=temperature

configs/hourly.py's recipe (per-window normalisation to the last value, a linear highway over the
24 inputs, early stopping, 5 seeds as one ensemble) with `data.multi_step=True`: one output per
hour 1..24, all from one forward pass. The calendar at each of the 24 target hours joins the
recurrent summary before the head (rnnjax.models.Forecaster). metrics.json reports every step
(`per_step`) next to both naive baselines, and predictions.png draws the error against the lead.
On the tutorial's series: --config.data.source=synthetic.
"""
from rnnjax.config import default_config


def get_config():
  config = default_config()
  config.data.source = 'csv'
  config.data.window = 24
  config.data.horizon = 24
  config.data.multi_step = True
  config.data.calendar = ('hour_of_day', 'day_of_week')
  config.data.season = 24
  config.data.val_fraction = 0.2
  config.model.cell = 'gru'
  config.model.hidden_sizes = (24, 50, 24)
  config.model.activation = 'swish'
  config.model.dropout = 0.1
  config.model.normalize = 'last'
  config.model.highway = 24
  config.train.epochs = 30
  config.train.batch_size = 32
  config.train.learning_rate = 1e-3
  config.train.early_stopping_patience = 5
  config.num_seeds = 5
  return config
