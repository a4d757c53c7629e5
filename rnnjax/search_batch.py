"""A batch of search trials trained as the members of one program, judged at the rungs.

`Batches.run` trains a batch's trials: one program (`rnnjax.program.members_program`) per
group of trials that share their program-changing values, each member a trial with its own
learning rate, weight decay, clip norm and dropout. The programs run in chunks of
`search_space.chunk_epochs` epochs; after each chunk the members' states are checkpointed in
`batch/` (`rnnjax.checkpoint`). At a rung, each member's best validation loss so far is reported
to its trial, the pruner decides trial by trial, and each decision is recorded (the `decisions`
of search_state.json) before the next is asked: a rerun after a kill replays the recorded ones,
as asking again would not give the same answer (the pruner records a trial's rung when it
decides). Pruned trials end there; the rest go on in a program of fewer members, its compiled
code read from the persistent compilation cache when that member count was compiled before.
"""
from __future__ import annotations

import os
import shutil
import time

import numpy as np

from rnnjax import checkpoint as ckpt_lib
from rnnjax import data as data_lib
from rnnjax import ensemble
from rnnjax import program as program_lib
from rnnjax import search_space
from rnnjax import seasons
from rnnjax import train as train_lib
from rnnjax.devices import to_host
from rnnjax.errors import Interrupted

BATCH_DIR = 'batch'


def best_so_far(val_loss_E) -> float:
  """The lowest finite validation loss of a trial's epochs so far ([E]); NaN when none is
  finite."""
  finite = np.asarray(val_loss_E, np.float64)
  finite = finite[np.isfinite(finite)]
  return float(finite.min()) if finite.size else float('nan')


class Batches:
  """Trains the search's batches; holds the data and trainers its groups share."""

  def __init__(self, config, params, study, workdir: str, data, signals, on_end=None):
    """on_end(trial number, Optuna state name) is called as each trial ends."""
    self.config, self.params, self.study = config, params, study
    self.directory = os.path.join(workdir, BATCH_DIR)
    self.signals, self.on_end = signals, on_end
    self.points = search_space.rungs(config)
    self.chunk = search_space.chunk_epochs(self.points)
    self._data_by_json = {config.data.to_json(): data}
    self._trainers = {}
    self._compiled = {}  # (trainer, members) -> compiled executables, by piece (Program.compiled)
    self.compile_seconds = 0.0

  def run(self, numbers: list[int], decisions: dict, save_decisions) -> None:
    """Trains the batch's trials (numbers) to their end, one program per group of trials that
    share their program-changing values, in the order of their first trial.

    decisions: str(trial) -> {str(epoch): pruned}, filled (and saved by `save_decisions()`) as
      the pruner decides; decisions already there are replayed.
    """
    trials = {t.number: t for t in self.study.get_trials(deepcopy=False)}
    groups = {}
    for n in numbers:
      groups.setdefault(search_space.program_key(self.params, trials[n].params), []).append(n)
    for key, group in groups.items():
      running = [n for n in group if not trials[n].state.is_finished()]
      if running:
        self._run_group(key, group, decisions, save_decisions)
    shutil.rmtree(self.directory, ignore_errors=True)

  def _trainer(self, key: tuple, drawn: dict):
    """(config, data, trainer) of a group; the config has the group's program-changing values
    (its member values are the members' own, in the plan)."""
    if key not in self._trainers:
      config = search_space.trial_config(self.config, self.params, drawn)
      text = config.data.to_json()
      if text not in self._data_by_json:
        self._data_by_json[text] = data_lib.prepare(config.data)
      data = self._data_by_json[text]
      config = seasons.resolved_config(config, data)
      self._trainers[key] = (config, data, train_lib.make_trainer(config, data))
    return self._trainers[key]

  def _plan(self, config, numbers: list[int]) -> ensemble.Members:
    """One member per trial: seed train.seed, the trial's member values ([M] each)."""
    trials = {t.number: t for t in self.study.get_trials(deepcopy=False)}
    base = {k: float(v) for k, v in train_lib.default_hparams(config).items()}
    by_name = {p.key: p for p in self.params if p.member}
    hparams = {}
    for key, name in search_space.MEMBER_KEYS.items():
      hparams[name] = np.array(
          [by_name[key].value(trials[n].params[key]) if key in by_name else base[name]
           for n in numbers], np.float32)
    return ensemble.Members(seeds=np.full(len(numbers), self.config.train.seed),
                            hparams=hparams,
                            swept=tuple(search_space.MEMBER_KEYS[k] for k in by_name))

  def _program(self, trainer, config, numbers: list[int]):
    """The members program of trials `numbers`. Programs of one group with as many members
    share their compiled executables (they differ only in their arguments): a later batch, or
    the survivors of a rung, do not trace, lower and compile them again."""
    program = program_lib.members_program(trainer, config, self._plan(config, numbers))
    program.compiled = self._compiled.setdefault((id(trainer), len(numbers)), {})
    return program

  def _run_group(self, key: tuple, group: list[int], decisions: dict, save_decisions) -> None:
    trials = {t.number: t for t in self.study.get_trials(deepcopy=False)}
    config, _, trainer = self._trainer(key, trials[group[0]].params)
    checkpointer = ckpt_lib.Checkpointer(self.directory, 1)
    try:
      restored = self._restore(checkpointer, trainer, config, group)
      if restored is None:
        alive = [n for n in group if not trials[n].state.is_finished()]
        program = self._program(trainer, config, alive)
        state = program.init()
        done, history, seconds = 0, {n: [] for n in alive}, {n: 0.0 for n in alive}
      else:
        program, state, meta = restored
        alive, done = meta['alive'], meta['epochs_done']
        history = {int(n): v for n, v in meta['history'].items()}
        seconds = {int(n): v for n, v in meta['seconds'].items()}
      while True:
        if done in self.points:
          kept = self._judge(alive, done, history, seconds, decisions, save_decisions)
          if not kept:
            break
          if kept != alive:  # the survivors go on in a program of their own
            host = to_host(program.to_saved(state))
            rows_M = np.array([alive.index(n) for n in kept])  # the survivors' members
            self.compile_seconds += program.compile_seconds
            program = self._program(trainer, config, kept)
            state = program.from_saved(_rows(host, rows_M))
            alive = kept
        start = time.perf_counter()
        compiled_before = program.compile_seconds
        state, chunk = program.run(state, self.chunk)
        self.signals.wait(chunk)
        chunk = to_host(chunk)
        spent = time.perf_counter() - start - (program.compile_seconds - compiled_before)
        done += self.chunk
        val_loss_ME = np.asarray(chunk['val_loss'])
        for i, n in enumerate(alive):
          history[n] = history[n] + [float(v) for v in val_loss_ME[i]]
          seconds[n] += spent / len(alive)
        checkpointer.save(done, program.to_saved(state),
                          {'group': group, 'alive': alive, 'epochs_done': done,
                           'history': {str(n): v for n, v in history.items()},
                           'seconds': {str(n): v for n, v in seconds.items()}})
        if self.signals.received:
          checkpointer.wait()
          raise Interrupted(f'received signal {self.signals.received}: saved the running '
                            f'batch at epoch {done}; run the same command again to continue '
                            'the search.', self.signals.received)
      self.compile_seconds += program.compile_seconds
    finally:
      checkpointer.close()
    shutil.rmtree(self.directory, ignore_errors=True)

  def _restore(self, checkpointer, trainer, config, group: list[int]):
    """(program, state, meta) of this group's newest checkpoint, or None (none, or another
    group's, which is removed)."""
    if not ckpt_lib.steps_on_disk(checkpointer.directories[0]):
      return None
    meta = ckpt_lib.newest_meta(checkpointer.latest)
    if meta is None or list(meta['group']) != list(group):
      checkpointer.close()
      shutil.rmtree(self.directory, ignore_errors=True)
      return None
    program = self._program(trainer, config, list(meta['alive']))
    restored = checkpointer.restore_latest(program.abstract_state)
    if restored is None:
      return None
    state, meta = restored
    return program, program.from_saved(state), meta

  def _judge(self, alive: list[int], epoch: int, history: dict, seconds: dict,
             decisions: dict, save_decisions) -> list[int]:
    """Reports each trial's best validation loss at `epoch` and ends the pruned ones (all of
    them at the last epoch, as COMPLETE); returns the trials that go on."""
    ot = _optuna()
    trials = {t.number: t for t in self.study.get_trials(deepcopy=False)}
    values = {n: best_so_far(history[n]) for n in alive}
    last = epoch == self.config.train.epochs
    live = {n: ot.trial.Trial(self.study, trials[n]._trial_id)  # pylint: disable=protected-access
            for n in alive if not trials[n].state.is_finished()}
    if last:
      for n, trial in live.items():
        self._end(trial, history[n], seconds[n], values[n])
      return []
    for n, trial in live.items():  # every member reports before any is judged
      if epoch not in trials[n].intermediate_values:
        trial.report(values[n], epoch)
    kept = []
    for n, trial in live.items():
      recorded = decisions.setdefault(str(n), {})
      if str(epoch) not in recorded:
        recorded[str(epoch)] = bool(trial.should_prune())
        save_decisions()
      if recorded[str(epoch)]:
        self._end(trial, history[n], seconds[n], None)
      else:
        kept.append(n)
    return kept

  def _end(self, trial, history: list, seconds: float, value: float | None) -> None:
    """Ends a trial: PRUNED (value None), COMPLETE, or FAIL when no epoch had a finite
    validation loss; its curve, epochs and seconds go into its user attributes."""
    ot = _optuna()
    trial.set_user_attr('val_loss_curve', [v if np.isfinite(v) else None for v in history])
    trial.set_user_attr('epochs', len(history))
    trial.set_user_attr('seconds', round(seconds, 3))
    if value is None:
      ended = self.study.tell(trial, state=ot.trial.TrialState.PRUNED)
    elif np.isfinite(value):
      ended = self.study.tell(trial, value)
    else:
      ended = self.study.tell(trial, state=ot.trial.TrialState.FAIL)
    if self.on_end is not None:
      self.on_end(ended.number, ended.state.name)


def _rows(tree, rows_M: np.ndarray):
  """Rows `rows_M` of every [M, ...] leaf of `tree`."""
  import jax  # pylint: disable=import-outside-toplevel
  return jax.tree.map(lambda a: np.asarray(a)[rows_M], tree)


def _optuna():
  import optuna  # pylint: disable=import-outside-toplevel
  return optuna
