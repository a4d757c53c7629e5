"""scripts/search.py and rnnjax.search: trials trained as members, pruned at rungs by Optuna,
a study that survives being killed, and the outputs a researcher reads."""
import json
import os
import signal
import subprocess

import numpy as np
import pandas as pd
import pytest

from conftest import PYTHON, ROOT, file_tree, script_env, tiny_config

import optuna  # the test extra installs it: a missing one fails here, never skips

from rnnjax import checkpoint as ckpt_lib
from rnnjax import search
from rnnjax import search_batch
from rnnjax import search_space
from rnnjax.errors import Interrupted, UserError

SPACE = (('train.learning_rate', 'log', 3e-4, 3e-2),
         ('model.dropout', 'uniform', 0.0, 0.3),
         ('model.hidden_sizes', 'choice', (8,), (8, 8)))


def search_config(**overrides):
  """A tiny search: 8 trials in batches of 4, rungs at epochs 1 and 3 of 9, two programs per
  batch (the hidden-size choice), a test part for the best run."""
  return tiny_config(**{'train.epochs': 9, 'data.test_fraction': 0.2, 'search.trials': 8,
                        'search.members': 4, 'search.min_epochs': 1, 'search.space': SPACE,
                        **overrides})


def without_seconds(frame):
  return frame.drop(columns=['seconds'])


@pytest.fixture(scope='module')
def searched(tmp_path_factory):
  """An uninterrupted search: (workdir, search.json, search.csv, members of each program
  started)."""
  from rnnjax import program as program_lib
  workdir = str(tmp_path_factory.mktemp('search') / 'run')
  starts = []
  init = program_lib.Program.init

  def counted(self):
    if self.members is not None:  # not the best run, a single model
      starts.append(self.members.size)
    return init(self)
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(program_lib.Program, 'init', counted)
    summary = search.run_search(search_config(), workdir, progress=False)
  return workdir, summary, pd.read_csv(os.path.join(workdir, 'search.csv')), starts


def test_trials_are_pruned_at_the_rungs_and_the_best_run_repeats_the_best_trial(searched):
  workdir, summary, frame, _ = searched
  assert len(frame) == 8, f'search.csv has {len(frame)} rows for 8 trials'
  assert set(frame['state']) <= {'COMPLETE', 'PRUNED'}, f'states: {set(frame["state"])}'
  assert (frame['state'] == 'PRUNED').any(), 'no trial was pruned at rungs 1 and 3 of 9'
  pruned = frame[frame['state'] == 'PRUNED']
  assert set(pruned['epochs']) <= {1, 3}, f'pruned trials stopped after {set(pruned.epochs)}'
  assert (frame.loc[frame['state'] == 'COMPLETE', 'epochs'] == 9).all()
  assert summary['member_epochs'] == frame['epochs'].sum() < 8 * 9
  # Successive halving: a trial goes on from a rung when its value there is among the best
  # third of every value reported there when it was judged (earlier batches, earlier programs
  # of its batch, and its own program's members).
  order = frame.groupby(['batch', 'model.hidden_sizes'])['trial'].transform('min')
  for e in (1, 3):
    reached = frame.dropna(subset=[f'val_loss_at_{e}'])
    for _, t in reached.iterrows():
      before = reached[(reached['batch'] < t['batch']) | ((reached['batch'] == t['batch'])
                                                         & (order[reached.index] <= order[t.name]))]
      values = np.sort(before[f'val_loss_at_{e}'].to_numpy())
      threshold = values[max(1, len(values) // 3) - 1]
      assert (t['epochs'] > e) == (t[f'val_loss_at_{e}'] <= threshold), (
          f'trial {t.trial} at rung {e}: value {t[f"val_loss_at_{e}"]}, best third of '
          f'{values} ends at {threshold}, trained {t.epochs} epochs')
  complete = frame[frame['state'] == 'COMPLETE']
  assert summary['best_trial'] == int(complete.loc[complete['value'].idxmin(), 'trial'])
  assert summary['val_loss'] == pytest.approx(complete['value'].min(), rel=1e-12)
  # best_config.py trained alone (one jit program, one device) repeats the trial's member.
  history = pd.read_csv(os.path.join(workdir, 'best_run', 'history.csv'))
  best_row = frame[frame['trial'] == summary['best_trial']].iloc[0]
  np.testing.assert_allclose(history['val_loss'].min(), best_row['value'], rtol=1e-5,
                             err_msg='the best run does not repeat the best trial')
  for e in (1, 3):
    np.testing.assert_allclose(history['val_loss'][:e].min(), best_row[f'val_loss_at_{e}'],
                               rtol=1e-5, err_msg=f'reported value at rung {e}')
  metrics = json.load(open(os.path.join(workdir, 'best_run', 'metrics.json')))
  assert summary['scores']['test_rmse'] == metrics['test_rmse']
  assert summary['scores_of'] == 'test'
  for p in SPACE:
    assert p[0] in frame.columns, f'search.csv lacks the searched key {p[0]}'


def test_trials_that_share_a_hidden_size_train_in_one_program(searched):
  _, _, frame, starts = searched
  assert set(frame['model.hidden_sizes']) == {'(8,)', '(8, 8)'}, 'both programs ran'
  groups = frame.groupby(['batch', 'model.hidden_sizes']).size()
  assert sorted(starts) == sorted(groups.tolist()), (
      f'programs started with {starts} members; trials per (batch, hidden sizes): {groups}')


def test_outputs_best_config_and_plot(searched):
  workdir, summary, frame, _ = searched
  for name in ('study.db', 'search.png', 'search.json', 'best_config.py', 'config.json'):
    assert os.path.isfile(os.path.join(workdir, name)), f'{name} missing'
  assert not os.path.exists(os.path.join(workdir, search_batch.BATCH_DIR))
  config = search_report_config(workdir)
  for key, value in summary['params'].items():
    section, name = key.split('.')
    got = config[section][name]
    assert (list(got) if isinstance(got, tuple) else got) == pytest.approx(value), key
  assert config.num_seeds == 1 and config.search.trials == 64, 'search section not reset'
  study = optuna.load_study(study_name='run', storage=search.default_storage(workdir))
  assert study.best_trial.number == summary['best_trial']
  assert {t.state.name for t in study.trials} == set(frame['state'])


def search_report_config(workdir):
  from rnnjax import search_report
  return search_report.best_config(open(os.path.join(workdir, 'best_config.py')).read())


def assert_same_best(summary, reference):
  """The same best values, validation loss and test scores as the uninterrupted search."""
  assert summary['params'].keys() == reference['params'].keys()
  for key, value in reference['params'].items():
    assert summary['params'][key] == pytest.approx(value, rel=1e-6), f'best {key}'
  assert summary['val_loss'] == pytest.approx(reference['val_loss'], rel=1e-6)
  assert summary['scores'] == pytest.approx(reference['scores'], rel=1e-5)


class Crashed(Exception):
  pass


def test_killed_at_any_point_and_run_again_ends_as_the_uninterrupted_search(
    searched, monkeypatch, tmp_path):
  """SIGTERM while a batch trains, a crash in the middle of a rung's pruning decisions and one
  while a batch is being asked; each rerun continues, and the search ends as one that never
  stopped: the same trials, values, states and best run."""
  _, reference, frame, _ = searched
  workdir = str(tmp_path / 'run')
  config = search_config()
  crashes = []

  def crash_once(name):
    if name not in crashes:
      crashes.append(name)
      raise Crashed(name)

  save = ckpt_lib.Checkpointer.save

  def save_then_signal(self, step, *args, **kwargs):
    save(self, step, *args, **kwargs)
    if 'batch/' in self.directories[0] + '/' and step == 2 and 'SIGTERM' not in crashes:
      crashes.append('SIGTERM')
      os.kill(os.getpid(), signal.SIGTERM)  # noted; the search stops after this chunk
  monkeypatch.setattr(ckpt_lib.Checkpointer, 'save', save_then_signal)
  save_state = search._save_state  # pylint: disable=protected-access

  def save_state_then_crash(where, state):
    save_state(where, state)
    if sum(len(d) for d in state['decisions'].values()) == 2:
      crash_once('after the second pruning decision of a rung')
  monkeypatch.setattr(search, '_save_state', save_state_then_crash)
  ask = optuna.study.Study.ask

  def ask_then_crash(self, *args, **kwargs):
    trial = ask(self, *args, **kwargs)
    if trial.number == 5:
      crash_once('while asking the second batch')
    return trial
  monkeypatch.setattr(optuna.study.Study, 'ask', ask_then_crash)
  stops = []
  for _ in range(4):
    try:
      summary = search.run_search(config, workdir, progress=False)
      break
    except Interrupted as e:  # SIGTERM: a checkpoint of the running batch, then a message
      stops.append(str(e))
      assert ckpt_lib.steps_on_disk(os.path.join(workdir, 'batch', ckpt_lib.LATEST_DIR))
    except Crashed as e:
      stops.append(str(e))
  assert len(stops) == 3 and any('run the same command again' in s for s in stops), stops
  resumed = pd.read_csv(os.path.join(workdir, 'search.csv'))
  # Trials asked before the crash while asking end as FAIL and are asked again.
  asked_again = resumed[resumed['state'] != 'FAIL'].reset_index(drop=True)
  assert (resumed['state'] == 'FAIL').sum() == 2, resumed[['trial', 'state']]
  compared = [c for c in frame.columns if c not in ('trial', 'seconds')]
  pd.testing.assert_frame_equal(asked_again[compared], frame[compared], check_exact=False,
                                check_dtype=False,
                                rtol=1e-6, obj='search.csv after three crashes')
  assert_same_best(summary, reference)


def test_enqueued_trials_train_as_given_and_no_pruner_trains_every_epoch(tmp_path):
  values = [{'train.learning_rate': 1e-3, 'model.dropout': 0.1},
            {'train.learning_rate': 1e-2, 'model.dropout': 0.0}]
  config = search_config(**{'search.trials': 2, 'search.members': 2, 'search.pruner': 'none',
                            'train.epochs': 1,
                            'search.space': SPACE[:2]})
  summary = search.run_search(config, str(tmp_path / 'w'), progress=False, enqueue=values)
  frame = pd.read_csv(tmp_path / 'w' / 'search.csv')
  np.testing.assert_allclose(frame['train.learning_rate'], [1e-3, 1e-2])
  assert (frame['epochs'] == 1).all() and summary['member_epochs'] == 2
  assert summary['rungs'] == [1]


def test_hyperband_stops_trials_only_at_rungs(tmp_path):
  config = search_config(**{'search.trials': 4, 'search.pruner': 'hyperband',
                            'search.space': SPACE[:2]})
  summary = search.run_search(config, str(tmp_path / 'w'), progress=False)
  frame = pd.read_csv(tmp_path / 'w' / 'search.csv')
  assert set(frame['epochs']) <= {1, 3, 9}, f'trials stopped after {set(frame.epochs)} epochs'
  assert summary['states'].get('COMPLETE', 0) >= 1
  assert summary['member_epochs'] == frame['epochs'].sum()


def test_the_pruner_keeps_the_best_third_at_rungs_only():
  from rnnjax import search_pruner
  pruner = search_pruner.SynchronousHalvingPruner(min_resource=2, reduction_factor=3)
  study = optuna.create_study(pruner=pruner)
  dist = {'x': optuna.distributions.FloatDistribution(0, 1)}
  for i, v in enumerate([0.5, 0.1, 0.9, 0.3, 0.7, 0.2]):
    study.add_trial(optuna.trial.create_trial(params={'x': i / 10}, distributions=dist,
                                              value=v, intermediate_values={2: v, 3: v}))
  decide = lambda v, step: pruner.prune(study, optuna.trial.create_trial(
      state=optuna.trial.TrialState.RUNNING, params={'x': 0.0}, distributions=dist,
      intermediate_values={step: v}))
  # Rung 2 holds 6 values: the best 6 // 3 = 2 (0.1, 0.2) go on.
  assert [pruner.is_rung(s) for s in (1, 2, 3, 6, 18)] == [False, True, False, True, True]
  assert not decide(0.2, 2) and decide(0.3, 2)
  assert not decide(0.95, 3), 'step 3 is no rung'
  assert decide(float('nan'), 2)


def test_rungs_follow_eta_and_chunks_divide_them():
  config = tiny_config(**{'train.epochs': 30, 'search.eta': 3})
  assert search_space.rungs(config) == (3, 9, 27, 30)
  assert search_space.chunk_epochs((3, 9, 27, 30)) == 3
  assert search_space.rungs(tiny_config(**{'train.epochs': 30, 'search.min_epochs': 2,
                                           'search.eta': 2})) == (2, 4, 8, 16, 30)
  assert search_space.rungs(tiny_config(**{'search.pruner': 'none'})) == (3,)


@pytest.mark.parametrize('overrides, says', [
    ({'search.space': (('train.learning_rate', 'log', 1e-2, 1e-3),)}, 'empty or inverted'),
    ({'search.space': (('model.dropout', 'uniform', 0.2, 0.2),)}, 'empty or inverted'),
    ({'search.space': (('train.learning_rate', 'log', 0.0, 1e-3),)}, "needs low > 0"),
    ({'search.space': (('model.hidden_sizes', 'choice'),)}, 'lists no values'),
    ({'search.space': (('train.learnin_rate', 'log', 1e-4, 1e-3),)}, 'not a config key'),
    ({'search.space': (('data.test_fraction', 'choice', 0.1, 0.2),)}, 'cannot be searched'),
    ({'search.space': (('data.window', 'uniform', 12, 48),)}, 'changes the compiled program'),
    ({'search.space': (('model.dropout', 'uniform', 0.0, 1.5),)}, 'model.dropout=1.5'),
    ({'search.space': (('model.cell', 'choice', 'gru', 'transformer'),)}, "'transformer'"),
    ({'search.members': 9}, 'more trials per program than'),
    ({'search.eta': 1}, 'at least 2'),
    ({'search.pruner': 'median'}, 'not one of'),
])
def test_bad_search_input_is_refused_and_nothing_is_written(overrides, says, tmp_path):
  workdir = tmp_path / 'w'
  with pytest.raises(UserError, match=says):
    search.run_search(search_config(**overrides), str(workdir), progress=False)
  assert not workdir.exists(), f'wrote {sorted(file_tree(tmp_path))}'


def test_a_storage_that_cannot_be_opened_is_refused_through_the_script(tmp_path):
  config = os.path.join(ROOT, 'configs', 'search.py')
  result = subprocess.run(
      [PYTHON, os.path.join(ROOT, 'scripts', 'search.py'), f'--config={config}',
       f'--workdir={tmp_path / "w"}', f'--storage=sqlite:///{tmp_path}/missing/dir/x.db'],
      capture_output=True, text=True, env=script_env(), cwd=ROOT, timeout=300, check=False)
  assert result.returncode == 2, result.stderr
  assert 'cannot be opened' in result.stderr and 'Traceback' not in result.stderr, result.stderr
  assert not os.listdir(tmp_path), f'wrote {os.listdir(tmp_path)}'


def test_another_config_in_the_workdir_is_refused(searched):
  workdir, _, _, _ = searched
  before = file_tree(workdir)
  with pytest.raises(UserError, match='different config'):
    search.run_search(search_config(**{'search.seed': 1}), workdir, progress=False)
  assert file_tree(workdir) == before


def test_without_optuna_the_search_says_how_to_install_it_and_writes_nothing(
    monkeypatch, tmp_path):
  import sys
  monkeypatch.setitem(sys.modules, 'optuna', None)  # `import optuna` raises ImportError
  with pytest.raises(UserError, match=r"pip install -e '\.\[search\]'"):
    search.run_search(search_config(), str(tmp_path / 'w'), progress=False)
  assert not (tmp_path / 'w').exists()
