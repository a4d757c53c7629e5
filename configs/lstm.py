"""The tutorial's task with LSTM layers in place of the GRUs (tanh candidates, as usual for LSTM).

  python scripts/train.py --config configs/lstm.py --workdir runs/lstm
"""
from rnnjax.config import default_config


def get_config():
  config = default_config()
  config.model.cell = 'lstm'
  config.model.hidden_sizes = (24, 50, 24)
  config.model.activation = 'tanh'
  return config
