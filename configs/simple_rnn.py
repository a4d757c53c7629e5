"""The tutorial's task with simple (Elman) recurrent layers.

  python scripts/train.py --config configs/simple_rnn.py --workdir runs/simple_rnn
"""
from rnnjax.config import default_config


def get_config():
  config = default_config()
  config.model.cell = 'simple'
  config.model.hidden_sizes = (24, 50, 24)
  config.model.activation = 'tanh'
  return config
