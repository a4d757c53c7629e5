"""rnnjax.workdir.lock: one process per workdir; a second is refused at once, naming the first.

The lock is an flock, so these tests check what the kernel guarantees and the code relies on:
another open file description is refused (another process, or the same one opening the file
again), and a holder that dies, even by SIGKILL, holds nothing.
"""
import errno
import fcntl
import json
import os
import signal
import socket
import time

import jax
import pandas as pd
import pytest

from conftest import PYTHON, file_tree, finish_script, start_script, tiny_config, train_cmd
from rnnjax import backtest as backtest_lib
from rnnjax import data as data_lib
from rnnjax import program as program_lib
from rnnjax import run as run_lib
from rnnjax import trained_run
from rnnjax import workdir as workdir_lib
from rnnjax.errors import UserError

POLL_TIMEOUT = 120  # seconds for a subprocess to take the lock; others may share the machine
EPOCHS = 2  # the first run is held by SIGSTOP, not by its length


def _holder(workdir):
  """What the lock file in `workdir` says about its holder, or None while there is none."""
  try:
    with open(os.path.join(workdir, workdir_lib.LOCK_FILE)) as f:
      return json.load(f)
  except (FileNotFoundError, ValueError):
    return None


def _wait_for_lock(proc, workdir):
  """Waits until `proc` holds `workdir`'s lock (its pid is in the lock file)."""
  deadline = time.monotonic() + POLL_TIMEOUT
  while time.monotonic() < deadline and proc.poll() is None:
    holder = _holder(workdir)
    if holder and holder['pid'] == proc.pid:
      return holder
    time.sleep(0.02)
  proc.kill()
  code, _, stderr = finish_script(proc)
  pytest.fail(f'{proc.args[:3]} never took the lock of {workdir} (exit code {code}, lock file '
              f'{_holder(workdir)}):\n{stderr[-3000:]}')


@pytest.fixture(scope='module')
def two_runs(tmp_path_factory):
  """scripts/train.py on one workdir twice: the second starts while the first holds the lock.

  The first is stopped (SIGSTOP) as soon as it holds the lock, so it is still running however
  fast the machine is, and nothing in the workdir moves while the second runs; then it goes on.

  Returns:
    (workdir, first's holder record, first's (code, stdout, stderr), second's, the workdir's
    files before and after the second ran).
  """
  directory = tmp_path_factory.mktemp('two_runs')
  workdir = directory / 'w'
  first = start_script(train_cmd(workdir, f'--config.train.epochs={EPOCHS}'), str(directory),
                       'first')
  holder = _wait_for_lock(first, workdir)
  first.send_signal(signal.SIGSTOP)
  try:
    before = file_tree(workdir)
    second = finish_script(start_script(train_cmd(workdir, f'--config.train.epochs={EPOCHS}'),
                                        str(directory), 'second'))
    after = file_tree(workdir)
  finally:
    first.send_signal(signal.SIGCONT)
  return workdir, holder, finish_script(first), second, before, after


def test_a_second_train_script_on_a_busy_workdir_exits_2_naming_the_first(two_runs):
  workdir, holder, _, (code, _, stderr), before, after = two_runs
  assert code == 2, f'the second train.py on a busy workdir exited {code}, not 2:\n{stderr[-3000:]}'
  assert 'Traceback' not in stderr and 'Fatal Python error' not in stderr, (
      f'the second train.py crashed instead of saying why:\n{stderr[-3000:]}')
  assert stderr.startswith('error: ') and f'process {holder["pid"]} ' in stderr, (
      f'stderr does not name the process holding the workdir (pid {holder["pid"]}):\n{stderr}')
  for what in (str(workdir), 'scripts/train.py', 'another --workdir'):
    assert what in stderr, f'the refusal does not mention {what!r}:\n{stderr}'
  assert after == before, (
      'the refused train.py changed the busy workdir: '
      f'{sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))}')


def test_the_first_run_finishes_complete_and_lets_go_of_the_workdir(two_runs):
  workdir, _, (code, _, stderr), *_ = two_runs
  assert code == 0, (
      f'the first train.py exited {code} after a second was refused:\n{stderr[-3000:]}')
  history = pd.read_csv(workdir / 'history.csv')
  assert list(history['epoch']) == list(range(1, EPOCHS + 1)), f'history.csv:\n{history}'
  assert (workdir / 'metrics.json').is_file() and (workdir / 'predictions.png').is_file()
  assert not (workdir / workdir_lib.LOCK_FILE).exists(), 'a finished run left its lock file'


def test_predict_reads_a_workdir_that_another_process_holds(two_runs):
  workdir = str(two_runs[0])
  with workdir_lib.lock(workdir, command='the next run'):
    run = trained_run.load_run(workdir)  # what scripts/predict.py reads; it takes no lock
  assert run.finished and run.epochs_done == EPOCHS, (
      f'load_run on a held, finished workdir read epochs_done={run.epochs_done}, '
      f'finished={run.finished}')


def test_a_sigkilled_holder_does_not_block_the_next_run(tmp_path, monkeypatch):
  workdir = str(tmp_path / 'w')
  code = ('import sys, time\nfrom rnnjax import workdir\n'
          'with workdir.lock(sys.argv[1]):\n  time.sleep(600)')
  proc = start_script([PYTHON, '-c', code, workdir], str(tmp_path), 'killed')
  _wait_for_lock(proc, workdir)
  proc.send_signal(signal.SIGKILL)
  assert proc.wait(timeout=POLL_TIMEOUT) == -signal.SIGKILL
  assert _holder(workdir)['pid'] == proc.pid, 'the killed holder should have left its lock file'

  class Proceeded(Exception):
    pass

  def past_the_lock(*args, **kwargs):  # the next run got through the lock and prepare
    raise Proceeded
  monkeypatch.setattr(program_lib, 'make_program', past_the_lock)
  with pytest.raises(Proceeded):
    run_lib.train_and_evaluate(tiny_config(), workdir, progress=False)
  assert sorted(os.listdir(workdir)) == ['config.json'], (
      'the run after a killed holder should have written config.json and removed the lock file; '
      f'the workdir holds {os.listdir(workdir)}')


def test_a_second_holder_in_this_process_is_refused_with_who_holds_it(tmp_path):
  workdir = str(tmp_path / 'w')
  command = 'python scripts/train.py --workdir runs/w'
  with workdir_lib.lock(workdir, command):
    holder = _holder(workdir)
    before = file_tree(workdir)
    with pytest.raises(UserError) as refused:
      with workdir_lib.lock(workdir, 'the second'):
        pytest.fail('a second holder entered a held workdir')
    assert file_tree(workdir) == before, 'the refused holder rewrote the lock file'
  message = str(refused.value)
  assert holder == {'pid': os.getpid(), 'host': socket.gethostname(), 'command': command,
                    'started': holder['started']}, holder
  for what in (f'--workdir={workdir!r}', f'process {os.getpid()} ', repr(socket.gethostname()),
               holder['started'], command, 'wait for it to end', f'kill {os.getpid()}',
               'another --workdir'):
    assert what in message, f'the refusal does not say {what!r}: {message}'
  with workdir_lib.lock(workdir):  # released on leaving the block
    pass


def test_the_lock_is_released_and_its_file_removed_when_the_run_raises(tmp_path):
  workdir = tmp_path / 'w'
  workdir.mkdir()
  (workdir / 'config.json').write_text('{}')
  with pytest.raises(RuntimeError, match='mid-run'):
    with workdir_lib.lock(str(workdir)):
      raise RuntimeError('mid-run')
  assert sorted(os.listdir(workdir)) == ['config.json'], os.listdir(workdir)
  with workdir_lib.lock(str(workdir)):
    assert _holder(workdir)['pid'] == os.getpid()


def test_a_workdir_the_lock_made_is_removed_when_the_run_left_nothing(tmp_path):
  workdir = tmp_path / 'runs' / 'a' / 'w'
  with pytest.raises(UserError, match='absent.csv'):
    run_lib.train_and_evaluate(tiny_config(**{'data.source': 'csv',
                                              'data.path': str(tmp_path / 'absent.csv')}),
                               str(workdir), progress=False)
  assert os.listdir(tmp_path) == [], (
      f'a run refused for its data left directories behind: {os.listdir(tmp_path)}')


def test_prepare_neither_takes_the_lock_for_a_run_nor_removes_it(tmp_path):
  workdir = str(tmp_path / 'w')
  with workdir_lib.lock(workdir):
    holder = _holder(workdir)
    workdir_lib.prepare(workdir, tiny_config(), overwrite=False)  # no run there yet
    workdir_lib.prepare(workdir, tiny_config(**{'train.epochs': 5}), overwrite=True)
    assert _holder(workdir) == holder, '--overwrite removed or changed the held lock file'


def test_the_lock_of_an_unwritable_workdir_says_so(tmp_path):
  blocker = tmp_path / 'notes.txt'
  blocker.write_bytes(b'precious\n')
  with pytest.raises(UserError, match='is a file, not a directory'):
    with workdir_lib.lock(str(blocker)):
      pytest.fail('locked a file as a workdir')
  assert blocker.read_bytes() == b'precious\n' and os.listdir(tmp_path) == ['notes.txt']


def test_a_lock_won_on_a_file_its_holder_just_removed_is_taken_again(tmp_path, monkeypatch):
  """A holder removes the lock file before letting go; a process that opened the file just
  before must not run on the removed one while a third takes the new file at the path."""
  workdir = tmp_path / 'w'
  path = workdir / workdir_lib.LOCK_FILE
  flock, calls = fcntl.flock, []

  def released_meanwhile(fd, operation):
    if not calls:  # between this process's open and its flock, the holder leaves
      os.remove(path)
      path.write_text('')
    calls.append(fd)
    return flock(fd, operation)
  monkeypatch.setattr(fcntl, 'flock', released_meanwhile)
  with workdir_lib.lock(str(workdir)):
    assert len(calls) == 2, f'flock called {len(calls)} times; the removed file was not let go'
    assert _holder(workdir)['pid'] == os.getpid(), (
        'the lock was kept on the removed file: the file at the path names no holder')


def test_a_holder_that_has_not_said_who_it_is_still_refuses(tmp_path):
  workdir = tmp_path / 'w'
  workdir.mkdir()
  with open(workdir / workdir_lib.LOCK_FILE, 'w') as f:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held, nothing written yet
    with pytest.raises(UserError, match='another process .*another --workdir'):
      with workdir_lib.lock(str(workdir)):
        pytest.fail('a second holder entered a held workdir')


def test_only_process_0_of_a_distributed_run_takes_the_lock(tmp_path, monkeypatch):
  workdir = str(tmp_path / 'w')
  with workdir_lib.lock(workdir):
    holder = _holder(workdir)
    monkeypatch.setattr(jax, 'process_index', lambda: 1)
    with workdir_lib.lock(workdir):  # process 1 of the same run: not refused
      assert _holder(workdir) == holder, 'process 1 wrote over process 0\'s lock file'


def test_a_filesystem_without_locks_runs_with_a_warning(tmp_path, monkeypatch, caplog):
  def no_locks(fd, operation):
    raise OSError(errno.ENOLCK, 'No locks available')
  monkeypatch.setattr(fcntl, 'flock', no_locks)
  workdir = str(tmp_path / 'w')
  with workdir_lib.lock(workdir):
    pass
  assert 'cannot lock' in caplog.text and 'No locks available' in caplog.text, caplog.text


@pytest.mark.parametrize('start', ['train', 'backtest'])
def test_a_run_on_a_held_workdir_is_refused_before_it_loads_data(tmp_path, monkeypatch, start):
  workdir = tmp_path / 'w'
  workdir.mkdir()
  (workdir / 'config.json').write_text('{}')

  def loads_data(*args, **kwargs):
    raise AssertionError(f'{start} loaded its data before it was refused the workdir')
  monkeypatch.setattr(data_lib, 'prepare', loads_data)
  monkeypatch.setattr(data_lib, 'load', loads_data)
  monkeypatch.setattr(backtest_lib, 'make_backtest', loads_data)
  with workdir_lib.lock(str(workdir), 'scripts/train.py --workdir w'):
    before = file_tree(workdir)
    with pytest.raises(UserError, match=f'process {os.getpid()} .*scripts/train.py'):
      if start == 'train':
        run_lib.train_and_evaluate(tiny_config(), str(workdir), progress=False)
      else:
        backtest_lib.run_backtest(tiny_config(), str(workdir), progress=False)
    assert file_tree(workdir) == before, f'the refused {start} changed the workdir'
