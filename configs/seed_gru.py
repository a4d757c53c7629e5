"""The tutorial: 24 hourly temperatures in, the temperature 13 steps after the last one out.

  python scripts/train.py --config configs/seed_gru.py --workdir runs/seed_gru

Stacked GRU 24/50/24 with swish candidates and dropout 0.1, Dense(1), Adam 1e-3, MSE, batch 32,
30 epochs, on 200 days of the synthetic series with noise 0.5. The tutorial's
`adelanto_prediccion=12` is `horizon=13` here (target = y[t + horizon]). Unlike the tutorial,
the MinMax scaler is fit on the training part of the series only: fitting it on the whole series
leaks the validation range into training.
"""
from rnnjax.config import default_config


def get_config():
  config = default_config()
  config.data.source = 'synthetic'
  config.data.synthetic.num_days = 200
  config.data.synthetic.noise = 0.5
  config.data.window = 24
  config.data.horizon = 13
  config.data.val_fraction = 0.2
  config.data.scaler = 'minmax'
  config.model.cell = 'gru'
  config.model.hidden_sizes = (24, 50, 24)
  config.model.activation = 'swish'
  config.model.dropout = 0.1
  config.train.epochs = 30
  config.train.batch_size = 32
  config.train.learning_rate = 1e-3
  return config
