"""The recommended recipe for one regular series, or a panel, of any time step, from a CSV file.

  python scripts/train.py --config configs/recipe.py --workdir runs/recipe \
    --config.data.path=weather.csv --config.data.time_column=time \
    --config.data.target=temperature

Add past-only input columns with --config.data.features='("dewpoint","humidity")', a panel
with --config.data.id_column=station, another lead with --config.data.horizon=H.

The tutorial's GRU 24/50/24 on 24 inputs, with what docs/levers.md measured to carry across
time steps:
  - data.test_fraction=0.2: the last 20% of every series is a test part that no choice of the
    run sees; the printed verdict is its score against persistence, seasonal naive and a
    ridge regression on the same inputs;
  - data.lags='auto': the target a day, two days and a week back (hourly; the seasons of the
    series' own time step otherwise: rnnjax.seasons.STEP_SEASONS) as input columns, read along
    the window and at the target times, so a 24-step scan still sees last week;
  - data.season='auto': the seasonal-naive baseline's period picked on the training part;
  - model.normalize='last': each window's last value is subtracted from its inputs and added
    back to the forecast, so the network forecasts the change from the last input;
  - model.highway=24, highway_columns='all', highway_init='ridge': a linear path beside the
    network, on every input column of the window and the known inputs at the target time (the
    linear baseline's inputs), started as a ridge regression fitted on the training windows
    (the network's head starts at zero): training begins at the linear forecast and the
    network learns what it misses;
  - early stopping after 5 epochs without a better validation loss, the best epoch restored;
    train.score_start: the starting ridge is epoch 0, so the network is kept only where it
    beats the linear forecast on validation;
  - an ensemble of 5 seeds trained as one program; the reported forecast is their mean.
"""
from rnnjax.config import default_config


def get_config():
  config = default_config()
  config.data.source = 'csv'
  config.data.window = 24
  config.data.horizon = 13
  config.data.lags = 'auto'
  config.data.season = 'auto'
  config.data.val_fraction = 0.2
  config.data.test_fraction = 0.2
  config.model.cell = 'gru'
  config.model.hidden_sizes = (24, 50, 24)
  config.model.activation = 'swish'
  config.model.dropout = 0.1
  config.model.normalize = 'last'
  config.model.highway = 24
  config.model.highway_columns = 'all'
  config.model.highway_init = 'ridge'
  config.train.epochs = 30
  config.train.batch_size = 32
  config.train.learning_rate = 1e-3
  config.train.early_stopping_patience = 5
  config.train.score_start = True
  config.num_seeds = 5
  return config
