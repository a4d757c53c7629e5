r"""A search against the same trials run to the end, and against an Optuna study that trains
one model per trial; side by side in one process. Prints a table and writes JSON.

  python scripts/benchmark_search.py --config configs/search.py --workdir runs/bench_search
  python scripts/benchmark_search.py --config configs/recipe.py --workdir runs/bench_sp \
      --config.data.path=../shared/data/sandpoint_hourly.csv \
      --config.data.time_column=time --config.data.target=temperature

Arms, in this order, each in its own folder of --workdir:
  search      scripts/search.py's code (`rnnjax.search.run_search`) as configured: trials
              trained search.members at a time as members of one program, pruned at rungs.
  to_the_end  the same trials (enqueued with the search's values, in its order), no pruner:
              every trial trains every epoch, also as members.
  one_by_one  an Optuna study with the same sampler (seed search.seed) and pruner whose
              objective trains one model per trial, as scripts/train.py would: the trial's
              config, its data read, its program compiled (through the persistent cache, as
              train.py does), trained chunk by chunk to each rung, reported, pruned. It skips
              what train.py adds after training (scoring, plots, checkpoints), in its favour.
  base        the config as given, trained by scripts/train.py's code: the test score the
              search's best config must beat.
Figures: member-epochs of search / to_the_end, best validation loss of each, seconds of the
search loop (without training its best config) against one_by_one's, and the test RMSE of
the search's best config against the base config's.
"""
import json
import os
import time

from absl import app, flags, logging
from ml_collections import config_flags

config_flags.DEFINE_config_file('config', None, 'The searched config file.', lock_config=True)
flags.DEFINE_string('workdir', None, 'Folder of the arms (each in its own subfolder).')
flags.DEFINE_list('arms', ['search', 'to_the_end', 'one_by_one', 'base'], 'Arms to run.')
flags.mark_flags_as_required(['config', 'workdir'])
FLAGS = flags.FLAGS


def one_by_one(config, params, workdir: str) -> dict:
  """An Optuna study (sqlite in `workdir`) whose objective trains one model per trial."""
  import optuna  # pylint: disable=import-outside-toplevel
  from rnnjax import data as data_lib, program as program_lib, search, search_batch
  from rnnjax import search_space, seasons, train  # pylint: disable=import-outside-toplevel
  points = search_space.rungs(config)
  chunk = search_space.chunk_epochs(points)
  epochs = []

  def objective(trial):
    drawn = {p.key: (trial.suggest_categorical(p.key, p.labels()) if p.kind == 'choice'
                     else trial.suggest_float(p.key, *p.values, log=p.kind == 'log'))
             for p in params}
    trial_config = search_space.trial_config(config, params, drawn)
    data = data_lib.prepare(trial_config.data)
    trial_config = seasons.resolved_config(trial_config, data)
    program = program_lib.single_program(train.make_trainer(trial_config, data), trial_config)
    state, curve, done = program.init(), [], 0
    while True:
      state, chunk_history = program.run(state, chunk)
      curve += [float(v) for v in chunk_history['val_loss']]
      done += chunk
      if done in points:
        value = search_batch.best_so_far(curve)
        if done == config.train.epochs:
          epochs.append(done)
          return value
        trial.report(value, done)
        if trial.should_prune():
          epochs.append(done)
          raise optuna.TrialPruned()

  sampler = search.make_sampler(config.search, 0)
  study = optuna.create_study(
      storage=f'sqlite:///{os.path.abspath(os.path.join(workdir, "study.db"))}',
      study_name='one_by_one', direction='minimize', sampler=sampler,
      pruner=search.make_pruner(config), load_if_exists=False)
  start = time.perf_counter()
  study.optimize(objective, n_trials=config.search.trials)
  return {'seconds': time.perf_counter() - start, 'best_val_loss': study.best_value,
          'member_epochs': int(sum(epochs))}


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  from rnnjax import compile_cache, config as config_lib, devices, run, search  # pylint: disable=import-outside-toplevel
  from rnnjax import search_space  # pylint: disable=import-outside-toplevel
  config = FLAGS.config
  compile_cache.enable()
  devices.use_every_cpu_core(config, num_members=config.search.members)
  os.makedirs(FLAGS.workdir, exist_ok=True)
  params = search_space.check(config)
  results = {'config': json.loads(config_lib.to_json(config))}
  if 'search' in FLAGS.arms:
    start = time.perf_counter()
    s = search.run_search(config, os.path.join(FLAGS.workdir, 'search'))
    results['search'] = {'wall_seconds': time.perf_counter() - start,
                         'seconds': s['seconds']['search_seconds_this_process'],
                         'member_epochs': s['member_epochs'], 'best_val_loss': s['val_loss'],
                         'test_rmse': s['scores'].get('test_rmse'), 'states': s['states'],
                         'best_trial': s['best_trial'], 'params': s['params']}
  if 'to_the_end' in FLAGS.arms:
    import pandas as pd  # pylint: disable=import-outside-toplevel
    frame = pd.read_csv(os.path.join(FLAGS.workdir, 'search', 'search.csv'))
    frame = frame[frame['state'] != 'FAIL']
    values = [{p.key: p.value(row[p.key]) for p in params}
              for _, row in frame.iterrows()]
    full = config_lib.replaced(config, **{'search.pruner': 'none'})
    start = time.perf_counter()
    s = search.run_search(full, os.path.join(FLAGS.workdir, 'to_the_end'), enqueue=values)
    results['to_the_end'] = {'wall_seconds': time.perf_counter() - start,
                             'seconds': s['seconds']['search_seconds_this_process'],
                             'member_epochs': s['member_epochs'],
                             'best_val_loss': s['val_loss'],
                             'test_rmse': s['scores'].get('test_rmse')}
  if 'one_by_one' in FLAGS.arms:
    folder = os.path.join(FLAGS.workdir, 'one_by_one')
    os.makedirs(folder, exist_ok=True)
    results['one_by_one'] = one_by_one(config, params, folder)
  if 'base' in FLAGS.arms:
    metrics = run.train_and_evaluate(config, os.path.join(FLAGS.workdir, 'base'))
    results['base'] = {'test_rmse': metrics.get('test_rmse'), 'val_rmse': metrics['val_rmse']}
  r = results
  lines = []
  if 'search' in r and 'to_the_end' in r:
    lines.append(f"member-epochs: search {r['search']['member_epochs']} / to the end "
                 f"{r['to_the_end']['member_epochs']} = "
                 f"{r['search']['member_epochs'] / r['to_the_end']['member_epochs']:.3f}")
    lines.append(f"best validation loss: search {r['search']['best_val_loss']:.6g}, to the end "
                 f"{r['to_the_end']['best_val_loss']:.6g} (search "
                 f"{r['search']['best_val_loss'] / r['to_the_end']['best_val_loss'] - 1:+.2%})")
  if 'search' in r and 'one_by_one' in r:
    lines.append(f"seconds: search {r['search']['seconds']:.1f} / one model per trial "
                 f"{r['one_by_one']['seconds']:.1f} = "
                 f"{r['search']['seconds'] / r['one_by_one']['seconds']:.3f} (one by one: "
                 f"{r['one_by_one']['member_epochs']} member-epochs, best "
                 f"{r['one_by_one']['best_val_loss']:.6g})")
  if 'search' in r and 'base' in r and r['base']['test_rmse'] is not None:
    lines.append(f"test RMSE: best config {r['search']['test_rmse']:.4f}, the config as given "
                 f"{r['base']['test_rmse']:.4f}")
  print('\n'.join(lines))
  with open(os.path.join(FLAGS.workdir, 'benchmark_search.json'), 'w') as f:
    json.dump(results, f, indent=1, default=str)


if __name__ == '__main__':
  app.run(main)
