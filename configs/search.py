"""A search of the tutorial's GRU: 64 trials, trained 16 at a time as members of one program.

  python scripts/search.py --config configs/search.py --workdir runs/search

Learning rate, weight decay and dropout from continuous ranges, the stack from three choices
(one program per choice within a batch); rungs at 3, 9 and 27 of 30 epochs keep about the best
third. The best trial's config is trained in runs/search/best_run and scored on the test part,
the last 20% of the series, which no trial reads.
"""
from rnnjax.config import default_config


def get_config():
  config = default_config()
  config.data.test_fraction = 0.2
  config.search.space = (
      ('train.learning_rate', 'log', 1e-4, 1e-2),
      ('train.weight_decay', 'log', 1e-6, 1e-2),
      ('model.dropout', 'uniform', 0.0, 0.5),
      ('model.hidden_sizes', 'choice', (24, 50, 24), (32, 32), (64,)),
  )
  return config
