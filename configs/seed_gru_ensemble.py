"""The tutorial model trained as 64 seeds at once, in one compiled program.

  python scripts/train.py --config configs/seed_gru_ensemble.py --workdir runs/ensemble

Member k uses seed train.seed + k. metrics.json scores the ensemble-mean forecast with the
single-run keys and lists every member's errors; predictions.png draws the 10-90% band.
"""
from rnnjax.config import default_config


def get_config():
  config = default_config()
  config.num_seeds = 64
  config.ensemble_quantiles = (0.1, 0.9)
  return config
