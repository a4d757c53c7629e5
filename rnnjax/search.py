"""`run_search(config, workdir)`: an Optuna study whose trials train as the members of one program.

Through Optuna's ask-and-tell interface, a batch of `search.members` trials is asked at once
and trained as the members of one compiled program (`rnnjax.search_batch`); trials whose values
change the program (a choice of `model.hidden_sizes`...) train in one program per combination.
At each rung (`search_space.rungs`) every member's best validation loss so far is reported to its
trial and Optuna's pruner decides; the survivors go on in a program of fewer members. Each
trial's value is its best validation loss: the test part is never read. When every trial has
ended, the best trial's config is written as `best_config.py` and trained by scripts/train.py's
code in `best_run/`, whose test scores `search.json` reports (`rnnjax.search_report`).

The study is stored in `study.db` (SQLite) in the workdir, or in any database Optuna accepts
(`storage`), so several hosts can share one study, each with its own workdir. A killed search
continues when run again: see `rnnjax.search_batch` for the running batch, and `_ask` for a
batch asked again. The workdir:

  config.json            the searched config (another config there is refused)
  study.db               the study, unless `storage` names another database
  search_state.json      this workdir's running batch, its pruning decisions, its worker id
  batch/                 checkpoints of the running program
  search.csv, search.png, search.json, best_config.py, best_run/   (written at the end)
"""
from __future__ import annotations

import collections
import logging
import os
import time
import uuid

import tqdm

from rnnjax import config_checks
from rnnjax import data as data_lib
from rnnjax import preemption
from rnnjax import search_batch
from rnnjax import search_report
from rnnjax import search_space
from rnnjax import workdir as workdir_lib
from rnnjax.errors import Interrupted, UserError

STATE_FILE = 'search_state.json'
STUDY_FILE = 'study.db'
BEST_RUN = 'best_run'


def optuna():
  """The optuna module, or a UserError saying how to install it."""
  try:
    import optuna as module  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise UserError("searches need Optuna: pip install -e '.[search]'") from None
  module.logging.set_verbosity(module.logging.WARNING)
  return module


def default_storage(workdir: str) -> str:
  """The SQLite URL of the workdir's study.db."""
  return f'sqlite:///{os.path.abspath(os.path.join(workdir, STUDY_FILE))}'


def open_storage(url: str):
  """An Optuna storage for `url`, opened (and its tables made) now.

  Raises:
    UserError: the URL names no database Optuna can open, with the reason.
  """
  ot = optuna()
  try:
    return ot.storages.RDBStorage(url)
  except Exception as e:  # noqa: BLE001 - SQLAlchemy and the drivers raise many kinds
    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise UserError(f'--storage={url!r} cannot be opened as an Optuna study database '
                    f'({type(e).__name__}: {reason}). Give a URL such as '
                    "sqlite:///path/study.db or postgresql://user@host/db.") from None


def make_sampler(search, batch: int):
  """The sampler of batch `batch`: seeded by search.seed and the batch, so a batch asked again
  after a kill draws what it drew the first time. TPE with a constant liar: the trials of one
  batch, asked before any ends, are drawn apart instead of together."""
  ot = optuna()
  seed = search.seed * 1_000_003 + batch
  if search.sampler == 'random':
    return ot.samplers.RandomSampler(seed=seed)
  return ot.samplers.TPESampler(seed=seed, constant_liar=True)


def make_pruner(config):
  """The pruner for `search.pruner`, its first rung `search_space.min_epochs`: successive
  halving of the trials at each rung (`rnnjax.search_pruner`), Optuna's asynchronous successive
  halving or Hyperband, or none."""
  ot = optuna()
  s = config.search
  if s.pruner == 'none':
    return ot.pruners.NopPruner()
  first = search_space.min_epochs(config)
  if s.pruner == 'hyperband':
    return ot.pruners.HyperbandPruner(min_resource=first, max_resource=config.train.epochs,
                                      reduction_factor=s.eta)
  if s.pruner == 'asha':
    return ot.pruners.SuccessiveHalvingPruner(min_resource=first, reduction_factor=s.eta,
                                              min_early_stopping_rate=0)
  from rnnjax import search_pruner  # pylint: disable=import-outside-toplevel
  return search_pruner.SynchronousHalvingPruner(first, s.eta)


def check(config, storage: str | None = None):
  """Everything a search needs, checked before anything is written: the config, the search
  section, the data, and a `storage` URL other than the workdir's.

  Returns:
    (space params, the dataset of the config as given, the opened storage or None).
  """
  optuna()  # a missing install is said before anything is written
  config_checks.validate(config)
  params = search_space.check(config)
  data = data_lib.prepare(config.data)
  return params, data, (None if storage is None else open_storage(storage))


def run_search(config, workdir: str, storage: str | None = None, study_name: str | None = None,
               progress: bool = True, enqueue: tuple = ()) -> dict:
  """Runs (or continues) the search `config.search` describes and writes its outputs.

  Args:
    config: a training config with a `search` section (`rnnjax.config.default_config`).
    workdir: the search's directory; running again continues the search.
    storage: a database URL Optuna accepts; None: study.db in the workdir.
    study_name: the study's name in the storage; None: the workdir's folder name.
    progress: show progress bars.
    enqueue: dicts of key -> value that the first trials take instead of drawing (e.g. another
      search's trials, to train the same trials another way).

  Returns:
    search.json's content.

  Raises:
    UserError: bad config, space, data, storage or workdir (nothing written), or the study in
      the storage belongs to another config.
    Interrupted: SIGTERM/SIGINT; the running batch was checkpointed first.
  """
  params, data, opened = check(config, storage)
  study_name = study_name or os.path.basename(os.path.abspath(workdir))
  with workdir_lib.lock(workdir):
    workdir_lib.prepare(workdir, config, overwrite=False, kind='search')
    study = _study(config, opened or open_storage(default_storage(workdir)), study_name)
    start = time.perf_counter()
    if enqueue and not study.trials:
      for values in enqueue:
        study.enqueue_trial(search_space.drawn_values(params, values))
    compile_seconds = _search_loop(config, params, study, workdir, data, progress)
    seconds = {'search_seconds_this_process': time.perf_counter() - start,
               'compile_seconds': compile_seconds}
    return search_report.finish(config, params, study, workdir, BEST_RUN, progress, seconds)


def _search_loop(config, params, study, workdir: str, data, progress: bool) -> float:
  """Asks and trains batches until the study has all its trials; returns the seconds spent
  compiling. SIGTERM / SIGINT end it at the next compiled chunk, with a checkpoint."""
  state = _load_state(workdir)
  signals = preemption.Signals()
  ended = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
  bar = tqdm.tqdm(total=config.search.trials, initial=ended, unit='trial',
                  disable=not progress, dynamic_ncols=True)
  counts = collections.Counter()

  def on_end(number, state_name):
    del number
    counts[state_name.lower()] += 1
    bar.update(1)
    bar.set_postfix(counts, refresh=False)
  batches = search_batch.Batches(config, params, study, workdir, data, signals, on_end)
  try:
    with signals.catching():
      while True:
        if state['batch'] is None:
          asked = _ask(config, params, study, state)
          if not asked:
            break
          state.update(batch=asked[0], trials=asked[1], decisions={})
          _save_state(workdir, state)
        batches.run(state['trials'], state['decisions'], lambda: _save_state(workdir, state))
        state.update(batch=None, trials=[], decisions={})
        _save_state(workdir, state)
        if signals.received:
          raise Interrupted(f'received signal {signals.received} between batches; run the '
                            'same command again to continue the search.', signals.received)
  finally:
    bar.close()
  return batches.compile_seconds


def _study(config, storage, name: str):
  """The study `name` in `storage`, made if new; refused if another config made it."""
  ot = optuna()
  study = ot.create_study(storage=storage, study_name=name, direction='minimize',
                          load_if_exists=True, sampler=make_sampler(config.search, 0),
                          pruner=make_pruner(config))
  recorded = workdir_lib.recorded_config(config, 'search')
  saved = study.user_attrs.get('config')
  if saved is None:
    study.set_user_attr('config', recorded)
  elif saved != recorded:
    raise UserError(f'the study {name!r} in the storage was made by another config; give '
                    'another study (--study) or storage (--storage), or the same config.')
  return study


def _load_state(workdir: str) -> dict:
  """search_state.json, or a new one with this workdir's worker id."""
  path = os.path.join(workdir, STATE_FILE)
  if os.path.isfile(path):
    import json  # pylint: disable=import-outside-toplevel
    with open(path) as f:
      return json.load(f)
  return {'worker': uuid.uuid4().hex, 'batch': None, 'trials': [], 'decisions': {}}


def _save_state(workdir: str, state: dict) -> None:
  workdir_lib.write_json(os.path.join(workdir, STATE_FILE), state)


def _ask(config, params, study, state: dict) -> tuple[int, list[int]] | None:
  """Asks the next batch of this worker: (batch index, trial numbers), or None when the study
  has all its trials.

  Trials this worker asked but never recorded as a batch (a kill while asking) end as FAIL, and
  the batch is asked again with the same seeded sampler: it draws the same values.
  """
  ot = optuna()
  running = ot.trial.TrialState.RUNNING
  mine = [t for t in study.get_trials(deepcopy=False)
          if t.user_attrs.get('worker', state['worker']) == state['worker']]
  orphans = {t.number for t in mine if t.state == running and t.number not in state['trials']}
  for number in sorted(orphans):
    logging.info('trial %d was asked by a batch that never started: FAIL', number)
    study.tell(number, state=ot.trial.TrialState.FAIL)
  # Enqueued trials wait to be asked: they count when asked.
  counted = [t for t in study.get_trials(deepcopy=False)
             if t.state not in (ot.trial.TrialState.FAIL, ot.trial.TrialState.WAITING)]
  size = min(config.search.members, config.search.trials - len(counted))
  if size <= 0:
    return None
  batch = 1 + max((t.user_attrs.get('batch', -1) for t in mine
                   if t.state != ot.trial.TrialState.FAIL and t.number not in orphans),
                  default=-1)
  study.sampler = make_sampler(config.search, batch)
  distributions = {p.key: p.distribution() for p in params}
  numbers = []
  for _ in range(size):
    trial = study.ask(distributions)
    trial.set_user_attr('worker', state['worker'])
    trial.set_user_attr('batch', batch)
    trial.set_user_attr('seed', int(config.train.seed))
    numbers.append(trial.number)
  return batch, numbers
