"""A learning-rate x dropout grid on the tutorial model, 4 seeds per point, in one program.

  python scripts/train.py --config configs/sweep_lr.py --workdir runs/sweep_lr

sweep.grid=True trains every combination of the swept lists (3 x 2 = 6 points) with num_seeds
seeds each: 24 members. Each member's values are recorded beside its metrics in metrics.json.
Only values that change no array shape can be swept: learning_rate, weight_decay, clip_norm,
dropout.
"""
from rnnjax.config import default_config


def get_config():
  config = default_config()
  config.num_seeds = 4
  config.sweep.grid = True
  config.sweep.learning_rate = (3e-4, 1e-3, 3e-3)
  config.sweep.dropout = (0.0, 0.1)
  return config
