"""What a finished search writes: search.csv, search.png, best_config.py, the best config's
run (`best_run/`, scripts/train.py's code) and search.json with that run's test scores.

search.csv has one row per trial: its values, its best validation loss at each rung it reached
(`val_loss_at_E`), its value (the best validation loss of all its epochs), its state as Optuna
names it (COMPLETE, PRUNED, FAIL, RUNNING), epochs trained and seconds (its share of the
program's time).
"""
from __future__ import annotations

import json
import os

import pandas as pd

from rnnjax import config as config_lib
from rnnjax import metrics as metrics_lib
from rnnjax import plots
from rnnjax import run
from rnnjax import search_space
from rnnjax import workdir as workdir_lib
from rnnjax.errors import UserError


def table(config, params, trials) -> pd.DataFrame:
  """One row per trial (see the module docstring), in trial order."""
  points = search_space.rungs(config)
  rows = []
  for t in sorted(trials, key=lambda t: t.number):
    row = {'trial': t.number, 'state': t.state.name, 'batch': t.user_attrs.get('batch')}
    for p in params:
      drawn = t.params.get(p.key)
      row[p.key] = None if drawn is None else drawn if p.kind == 'choice' else float(drawn)
    row['value'] = t.value if t.state.name == 'COMPLETE' else None
    for e in points[:-1]:
      row[f'val_loss_at_{e}'] = t.intermediate_values.get(e)
    row['epochs'] = t.user_attrs.get('epochs')
    row['seconds'] = t.user_attrs.get('seconds')
    rows.append(row)
  return pd.DataFrame(rows)


def best_config_text(config, params, trial, workdir: str) -> str:
  """best_config.py: the searched config (its search section reset) with the best trial's
  values, for scripts/train.py --config."""
  base = config_lib.replaced(config)
  fresh = config_lib.default_config().search
  with base.unlocked():
    base.search = fresh
  values = {p.key: p.value(trial.params[p.key]) for p in params}
  lines = ''.join(f'      {k!r}: {v!r},\n' for k, v in values.items())
  return (f'"""The best trial of the search in {workdir}: trial {trial.number}, validation '
          f'loss {trial.value:.6g} (search.json).\n\n'
          f'  python scripts/train.py --config {os.path.join(workdir, "best_config.py")} '
          '--workdir runs/best\n"""\n'
          'from rnnjax import config as config_lib\n\n'
          f"SEARCHED = r'''{config_lib.to_json(base)}'''\n\n\n"
          'def get_config():\n'
          '  """The searched config with the best trial\'s values."""\n'
          '  return config_lib.override(config_lib.from_json(SEARCHED), {\n'
          f'{lines}  }})\n')


def best_config(text: str):
  """The config a best_config.py text defines."""
  namespace = {}
  exec(compile(text, 'best_config.py', 'exec'), namespace)  # pylint: disable=exec-used
  return namespace['get_config']()


def finish(config, params, study, workdir: str, best_run: str, progress: bool,
           seconds: dict) -> dict:
  """Writes the outputs of a search whose trials have ended, trains the best config in
  `workdir/best_run` and returns search.json's content.

  Raises:
    UserError: no trial completed (every one pruned or failed).
  """
  trials = study.get_trials(deepcopy=False)
  frame = table(config, params, trials)
  workdir_lib.atomic_write(os.path.join(workdir, 'search.csv'),
                           lambda p: frame.to_csv(p, index=False))
  curves = [(t.number, t.user_attrs.get('val_loss_curve') or [], t.state.name) for t in trials]
  workdir_lib.atomic_write(os.path.join(workdir, 'search.png'),
                           lambda p: plots.plot_search(curves, frame, params, p))
  complete = [t for t in trials if t.state.name == 'COMPLETE']
  if not complete:
    raise UserError(f'no trial of the search in {workdir!r} completed (see search.csv): every '
                    'one was pruned or failed. Lower the learning rates searched, or set '
                    'train.clip_norm.')
  best = min(complete, key=lambda t: (t.value, t.number))
  text = best_config_text(config, params, best, workdir)
  workdir_lib.write_text(os.path.join(workdir, 'best_config.py'), text)
  metrics = run.train_and_evaluate(best_config(text), os.path.join(workdir, best_run),
                                   progress=progress)
  part = 'test' if 'test_rmse' in metrics else 'val'
  base = 'baseline' if part == 'val' else f'{part}_baseline'
  scores = {k: metrics[k] for k in (f'{part}_rmse', f'{part}_mae',
                                    f'{base}_persistence_rmse', f'{base}_seasonal_naive_rmse',
                                    f'{base}_linear_rmse') if k in metrics}
  epochs = [t.user_attrs.get('epochs') or 0 for t in trials]
  summary = {
      'best_trial': best.number,
      'params': {p.key: _json_value(p.value(best.params[p.key])) for p in params},
      'val_loss': best.value,
      'best_config': 'best_config.py', 'best_run': best_run,
      'scores_of': part,
      'scores': scores,
      'verdict': metrics_lib.verdict(metrics, part),
      'states': {s: int((frame['state'] == s).sum()) for s in sorted(set(frame['state']))},
      'rungs': list(search_space.rungs(config)),
      'member_epochs': int(sum(epochs)),
      'member_epochs_to_the_end': len(trials) * config.train.epochs,
      'seconds': seconds,
  }
  workdir_lib.write_json(os.path.join(workdir, 'search.json'), summary)
  return summary


def _json_value(value):
  return list(value) if isinstance(value, tuple) else value


def summary_lines(summary: dict) -> list[str]:
  """What scripts/search.py prints: the best trial, its values, its run's verdict, JSON."""
  values = ', '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v!r}'
                     for k, v in summary['params'].items())
  states = ', '.join(f'{n} {s.lower()}' for s, n in summary['states'].items())
  return [f'best trial {summary["best_trial"]} ({states}): val_loss '
          f'{summary["val_loss"]:.6g}; {values}',
          f'best_config.py trained in {summary["best_run"]}/: {summary["verdict"]}',
          json.dumps(workdir_lib.finite_json(
              {'best_trial': summary['best_trial'],
               **{k: float(f'{v:.6g}') for k, v in (('val_loss', summary['val_loss']),
                                                    *summary['scores'].items())},
               'member_epochs': summary['member_epochs']}))]
