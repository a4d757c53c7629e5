"""The recommended config for an hourly series read from a CSV file: forecast 13 hours ahead.

  python scripts/train.py --config configs/hourly.py --workdir runs/hourly \
    --config.data.path=weather.csv --config.data.time_column=time \
    --config.data.target=temperature

Add past-only input columns with --config.data.features='("dewpoint","humidity")'.

The tutorial's GRU 24/50/24 on 24 hourly inputs, with four changes that docs/levers.md
measured on a real hourly weather record and on the tutorial's series:
  - model.normalize='last': each window's last value is subtracted from its inputs and added
    back to the forecast, so the network forecasts the change from the last input (an
    untrained network is the persistence forecast) and a level outside the training range
    (a trend) is no extrapolation;
  - model.highway=24: a linear map of the 24 inputs beside the network, which on its own can
    express either naive forecast or any linear autoregression on the window;
  - early stopping after 5 epochs without a better validation loss, the best epoch restored;
  - an ensemble of 5 seeds trained as one program; the reported forecast is their mean.
About a minute of training for a year of hourly data on 2 CPU cores.
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
  config.model.dropout = 0.1
  config.model.normalize = 'last'
  config.model.highway = 24
  config.train.epochs = 30
  config.train.batch_size = 32
  config.train.learning_rate = 1e-3
  config.train.early_stopping_patience = 5
  config.num_seeds = 5
  return config
