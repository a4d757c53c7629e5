"""Full disks, unusable workdirs, kills and signals: each ends in one message and an exit code,
and leaves a workdir that a rerun finishes from, with no temporary file in it.

The full disk is real: a small tmpfs mounted for the test (the tests run as root; elsewhere they
are skipped with the reason), filled to the last byte at a chosen moment of the run, so the
ENOSPC comes from the kernel through Orbax's background threads or matplotlib, as a user meets it.
"""
import contextlib
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest

from conftest import PYTHON, ROOT, file_tree, finish_script, start_script, tiny_config
from rnnjax import checkpoint as ckpt_lib
from rnnjax import evaluate as evaluate_lib
from rnnjax import plots
from rnnjax import run as run_lib
from rnnjax import workdir as workdir_lib
from rnnjax.errors import Interrupted, UserError, WriteError

# tiny_config() on the command line: the in-process runs below are the subprocesses' reference.
TRAIN_ARGS = ['--config', os.path.join(ROOT, 'configs', 'seed_gru.py'),
              '--config.data.synthetic.num_days=20', '--config.model.hidden_sizes=(8,8)',
              '--config.train.epochs=3', '--config.train.checkpoint_every=1']
TRAIN = os.path.join(ROOT, 'scripts', 'train.py')
DISK_KIB = 8192
TIMINGS = {'train_seconds', 'compile_seconds', 'train_seconds_this_process', 'seconds'}

# scripts/train.py with the disk filled as soon as the first checkpoint has landed: the next save
# meets ENOSPC in Orbax's background threads.
FILL_AFTER_FIRST_CHECKPOINT = '''
import errno, os, runpy, sys
from rnnjax import checkpoint
wait = checkpoint.Checkpointer.wait
def wait_then_fill(self):
  epoch = wait(self)
  if epoch is not None and not os.path.exists({filler!r}):
    fd = os.open({filler!r}, os.O_WRONLY | os.O_CREAT)
    try:
      while True:
        os.write(fd, bytes(4096))
    except OSError as e:
      assert e.errno == errno.ENOSPC, e
    finally:
      os.close(fd)
  return epoch
checkpoint.Checkpointer.wait = wait_then_fill
sys.argv[0] = {script!r}
runpy.run_path({script!r}, run_name='__main__')
'''


def fill_disk(path: str) -> None:
  """Writes `path` until its file system is full (ENOSPC)."""
  fd = os.open(path, os.O_WRONLY | os.O_CREAT)
  try:
    while True:
      os.write(fd, bytes(4096))
  except OSError as e:
    assert e.errno == errno.ENOSPC, f'filling {path} failed otherwise: {e}'
  finally:
    os.close(fd)


@contextlib.contextmanager
def small_disk(directory: str, kib: int = DISK_KIB):
  """A tmpfs of `kib` KiB mounted at `directory` for the block; skips where it cannot be."""
  if os.geteuid() != 0:
    pytest.skip('a full disk needs a tmpfs of its own, and mounting one needs root')
  os.makedirs(directory, exist_ok=True)
  try:
    proc = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={kib}k', 'tmpfs', directory],
                          capture_output=True, text=True, timeout=60)
  except FileNotFoundError:
    pytest.skip('no mount command here to make a small disk')
  if proc.returncode != 0:
    pytest.skip(f'this machine cannot mount a tmpfs: {proc.stderr.strip()}')
  try:
    yield directory
  finally:
    if subprocess.run(['umount', directory], capture_output=True).returncode != 0:
      subprocess.run(['umount', '-l', directory], capture_output=True)


def _leftovers(directory: str) -> list[str]:
  """Temporary files of atomic_write and Orbax's temporary folders anywhere under `directory`."""
  found = []
  for root, dirs, files in os.walk(directory):
    found += [os.path.join(root, n) for n in dirs + files
              if n.startswith(workdir_lib.TMP_PREFIX) or 'orbax-checkpoint-tmp' in n]
  return found


def _strict_json(path: str):
  """The JSON in `path`, refusing NaN and Infinity as a strict parser (jq, JavaScript) does."""
  def refuse(constant):
    raise ValueError(f'{path} holds {constant}, which is not JSON')
  with open(path) as f:
    return json.loads(f.read(), parse_constant=refuse)


@pytest.fixture(scope='module')
def stopped_while_plotting(tmp_path_factory):
  """A tiny run in-process that receives SIGTERM while writing predictions.png, after its final
  checkpoint: (workdir, the exception it ended with, its config)."""
  workdir = str(tmp_path_factory.mktemp('sigterm') / 'w')
  config = tiny_config()
  draw = plots.plot_predictions

  def start_then_signal(panels, path):
    with open(path, 'wb') as f:
      f.write(b'\x89PNG half a figure')
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)  # the signal's handler raises here
    raise AssertionError('SIGTERM did not stop the run')

  def not_taken(signum, frame):
    raise AssertionError(f'signal {signum} reached the test: the run did not take it')
  previous = signal.signal(signal.SIGTERM, not_taken)  # never SIGTERM's default: it kills pytest
  plots.plot_predictions = start_then_signal
  try:
    with pytest.raises(Interrupted) as raised:
      run_lib.train_and_evaluate(config, workdir, progress=False)
  finally:
    plots.plot_predictions = draw
    signal.signal(signal.SIGTERM, previous)
  return workdir, raised.value, config


@pytest.fixture(scope='module')
def finished(stopped_while_plotting, tmp_path_factory):
  """The stopped run, run again: a finished workdir whose training was never interrupted."""
  source, _, config = stopped_while_plotting
  workdir = str(tmp_path_factory.mktemp('finished') / 'w')
  shutil.copytree(source, workdir)
  run_lib.train_and_evaluate(config, workdir, progress=False)
  return workdir


# --workdir values that cannot be a workdir, and what the message must say.
BAD_WORKDIRS = {
    'proc': ('/proc/rnnjax-test-workdir', r"--workdir='/proc/rnnjax-test-workdir' cannot be "
             r"(created in '/proc'|written)"),
    'sys': ('/sys/rnnjax-test-workdir', r"--workdir='/sys/rnnjax-test-workdir' cannot be "
            r"(created in '/sys'|written)"),
    'empty': ('', r'--workdir is empty'),
}


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """Starts at once every subprocess of this file that needs no earlier result: the bad
  workdirs, and (where a tmpfs can be mounted) the run whose disk fills after its first
  checkpoint."""
  base = tmp_path_factory.mktemp('faults')
  started = {}
  for name, (workdir, _) in BAD_WORKDIRS.items():
    cwd = base / f'cwd_{name}'  # an empty workdir must create nothing here either
    cwd.mkdir()
    started[name] = (start_script([PYTHON, TRAIN, *TRAIN_ARGS, f'--workdir={workdir}'], str(base),
                                  name, cwd=str(cwd)), cwd)
  disk = str(base / 'disk')
  with contextlib.ExitStack() as stack:
    try:
      stack.enter_context(small_disk(disk))
      full = os.path.join(disk, 'w')
      filler = os.path.join(disk, 'filler')
      hook = FILL_AFTER_FIRST_CHECKPOINT.format(filler=filler, script=TRAIN)
      started['full_disk'] = (start_script([PYTHON, '-c', hook, *TRAIN_ARGS,
                                            f'--workdir={full}'], str(base), 'full_disk'),
                              (full, filler))
    except pytest.skip.Exception as e:
      started['no_disk'] = str(e)
    yield started
    for value in started.values():
      if isinstance(value, tuple) and value[0].poll() is None:
        value[0].kill()
        value[0].wait()


@pytest.mark.parametrize('case', sorted(BAD_WORKDIRS))
def test_a_workdir_that_cannot_be_made_is_refused_with_exit_2(runs, case):
  proc, cwd = runs[case]
  workdir, expected = BAD_WORKDIRS[case]
  code, _, stderr = finish_script(proc)
  assert code == 2, f'--workdir={workdir!r}: train.py exited {code}, not 2:\n{stderr[-3000:]}'
  assert 'Traceback' not in stderr, f'--workdir={workdir!r} printed a traceback:\n{stderr[-3000:]}'
  assert re.search(expected, stderr), (
      f'--workdir={workdir!r}: stderr does not say what is wrong ({expected!r}):\n{stderr[-3000:]}')
  if workdir:
    assert not os.path.exists(workdir), f'--workdir={workdir!r} was created'
  assert not os.listdir(cwd), f'--workdir={workdir!r} created {os.listdir(cwd)} in the cwd'


def test_full_disk_during_a_checkpoint_keeps_the_last_one_and_a_rerun_finishes(runs, finished):
  if 'no_disk' in runs:
    pytest.skip(runs['no_disk'])
  proc, (workdir, filler) = runs['full_disk']
  code, _, stderr = finish_script(proc)
  assert code == 74, f'a full disk while saving ended with exit {code}, not 74:\n{stderr[-3000:]}'
  assert 'Traceback' not in stderr and 'RESOURCE_EXHAUSTED' not in stderr, (
      f'a full disk while saving printed tracebacks or Orbax\'s own errors:\n{stderr[-5000:]}')
  errors = [line for line in stderr.splitlines() if line.startswith('error:')]
  assert len(errors) == 1, f'expected one error message, got {len(errors)}:\n{stderr[-3000:]}'
  message = errors[0]
  assert re.search(rf"cannot write '{re.escape(workdir)}/({ckpt_lib.LATEST_DIR}|"
                   rf"{ckpt_lib.BEST_DIR})/2': no space left on device \(ENOSPC\)", message), (
      f'the message does not name the checkpoint being written and the cause: {message}')
  assert 'checkpoint of epoch 1' in message and 'run the same command again' in message, (
      f'the message does not say which checkpoint is kept and how to resume: {message}')
  assert not _leftovers(workdir), f'temporary files or folders left: {_leftovers(workdir)}'
  _, meta = ckpt_lib.load_for_inference(workdir)
  assert meta['epochs_done'] == 1, (
      f'the newest checkpoint that restores is epoch {meta["epochs_done"]}, not the last good one')

  os.remove(filler)  # free the space, and run the same again (in-process: it is quicker)
  run_lib.train_and_evaluate(tiny_config(), workdir, progress=False)
  metrics = _strict_json(os.path.join(workdir, 'metrics.json'))
  expected = _strict_json(os.path.join(finished, 'metrics.json'))
  differing = sorted(k for k in expected if k not in TIMINGS and metrics.get(k) != expected[k])
  assert not differing, 'the resumed run\'s metrics differ from an uninterrupted run\'s: ' + \
      ', '.join(f'{k}={metrics.get(k)!r} vs {expected[k]!r}' for k in differing)
  assert file_tree(workdir)['history.csv'] == file_tree(finished)['history.csv'], (
      'the resumed run\'s history.csv differs from an uninterrupted run\'s')


def test_full_disk_while_plotting_ends_in_a_message_and_a_rerun_finishes(
    stopped_while_plotting, finished, tmp_path, monkeypatch):
  source, _, config = stopped_while_plotting
  with small_disk(str(tmp_path / 'disk')) as disk:
    workdir, filler = os.path.join(disk, 'w'), os.path.join(disk, 'filler')
    shutil.copytree(source, workdir)  # trained; its figures and metrics.json still to write
    draw = plots.plot_predictions

    def fill_then_draw(panels, path):
      fill_disk(filler)
      draw(panels, path)
    monkeypatch.setattr(plots, 'plot_predictions', fill_then_draw)
    with pytest.raises(WriteError) as raised:
      run_lib.train_and_evaluate(config, workdir, progress=False)
    message = str(raised.value)
    assert raised.value.exit_code == 74 and isinstance(raised.value, UserError), (
        f'a full disk should end with exit code 74 through the scripts, got '
        f'{raised.value.exit_code}')
    predictions = os.path.join(workdir, 'predictions.png')
    assert f"cannot write '{predictions}': no space left on device (ENOSPC)" in message, (
        f'the message does not name the figure and the cause: {message}')
    assert f'checkpoint of epoch {config.train.epochs}' in message, (
        f'the message does not say the final checkpoint is kept: {message}')
    assert not _leftovers(workdir), f'temporary files left: {_leftovers(workdir)}'
    assert not os.path.exists(os.path.join(workdir, 'metrics.json')), (
        'metrics.json was written: the workdir looks finished though its figure is missing')
    _, meta = ckpt_lib.load_for_inference(workdir)
    assert meta['epochs_done'] == config.train.epochs, (
        f'the final checkpoint does not restore: newest usable is epoch {meta["epochs_done"]}')

    os.remove(filler)
    monkeypatch.setattr(plots, 'plot_predictions', draw)
    run_lib.train_and_evaluate(config, workdir, progress=False)
    with open(predictions, 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n', 'the rerun did not draw predictions.png'
    metrics = _strict_json(os.path.join(workdir, 'metrics.json'))
    expected = _strict_json(os.path.join(finished, 'metrics.json'))
    assert metrics['val_rmse'] == expected['val_rmse'], 'the rerun did not finish the same run'


def test_atomic_write_that_meets_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path):
  path = tmp_path / 'history.csv'
  path.write_text('the previous run\n')

  def half_then_full(tmp):
    with open(tmp, 'w') as f:
      f.write('epoch,loss\n1,')
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
  with pytest.raises(WriteError, match=re.escape(
      f"cannot write '{path}': no space left on device (ENOSPC)")) as raised:
    workdir_lib.atomic_write(str(path), half_then_full)
  assert raised.value.exit_code == 74 and raised.value.errno == errno.ENOSPC
  assert path.read_text() == 'the previous run\n', 'a failed write changed the file'
  assert sorted(os.listdir(tmp_path)) == ['history.csv'], 'a failed write left a temporary file'


def test_sigterm_while_writing_the_outputs_leaves_no_temporary_file(stopped_while_plotting):
  workdir, error, config = stopped_while_plotting
  assert error.exit_code == 128 + signal.SIGTERM, f'exit code {error.exit_code}, not 143'
  assert 'received signal 15' in str(error) and \
      f'checkpoint of epoch {config.train.epochs}' in str(error), (
          f'the message does not say what stopped the run and what is kept: {error}')
  assert not _leftovers(workdir), f'temporary files left: {_leftovers(workdir)}'
  assert not os.path.exists(os.path.join(workdir, 'predictions.png')), (
      'a half-written predictions.png took the place of the figure')
  _, meta = ckpt_lib.load_for_inference(workdir)
  assert meta['epochs_done'] == config.train.epochs, (
      f'the final checkpoint does not restore: newest usable is epoch {meta["epochs_done"]}')


def test_a_rerun_removes_what_a_killed_run_left_and_nothing_else(stopped_while_plotting,
                                                                   tmp_path):
  source, _, config = stopped_while_plotting
  workdir = str(tmp_path / 'w')
  shutil.copytree(source, workdir)
  # What a SIGKILL leaves: atomic_write's temporary files, Orbax's unfinished step folders.
  left = ['.tmp-k2j3h4.png', '.tmp-a8b7c6.json', f'{ckpt_lib.LATEST_DIR}/'
          f'{config.train.epochs + 1}.orbax-checkpoint-tmp/state/manifest.ocdbt',
          f'{ckpt_lib.BEST_DIR}/7.orbax-checkpoint-tmp/meta/metadata']
  # Names alike that are not theirs.
  kept = ['notes.tmp-1', 'tmp-plan.txt', '.tmpfile', '.tmp-mine/notes.txt',
          'my.orbax-checkpoint-tmp.txt', f'{ckpt_lib.LATEST_DIR}/notes.txt']
  for name in left + kept:
    path = os.path.join(workdir, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
      f.write(b'' if name in left[:2] else name.encode())
  before = file_tree(workdir)

  run_lib.train_and_evaluate(config, workdir, progress=False)
  after = file_tree(workdir)
  remaining = [name for name in left if os.path.exists(os.path.join(workdir, name))]
  assert not remaining, f'the rerun did not remove {remaining}'
  gone = [n for n in kept if after.get(n) != before[n]]
  assert not gone, f'the rerun removed or changed files that were not leftovers: {gone}'
  for name in (f'{ckpt_lib.LATEST_DIR}/{config.train.epochs + 1}.orbax-checkpoint-tmp',
               f'{ckpt_lib.BEST_DIR}/7.orbax-checkpoint-tmp'):
    assert not os.path.exists(os.path.join(workdir, name)), f'{name} is still there'
  assert 'metrics.json' in after, 'the rerun did not finish the run'


def test_write_json_writes_null_for_nan_and_infinity(tmp_path):
  path = str(tmp_path / 'scores.json')
  value = {'rmse': float('nan'), 'skill': float('-inf'), 'mae': 0.5, 'epochs': 3,
           'members': [np.float32('nan'), np.float64(1.25), None, np.int64(2)],
           'per_step': {'rmse': np.array([1.0, np.inf])}, 'name': 'NaN', 'ok': True}
  workdir_lib.write_json(path, value)
  assert _strict_json(path) == {
      'rmse': None, 'skill': None, 'mae': 0.5, 'epochs': 3, 'members': [None, 1.25, None, 2],
      'per_step': {'rmse': [1.0, None]}, 'name': 'NaN', 'ok': True}
  assert sorted(os.listdir(tmp_path)) == ['scores.json'], 'a temporary file was left'


def test_metrics_json_holds_null_where_a_score_is_not_finite(stopped_while_plotting, tmp_path,
                                                             monkeypatch):
  source, _, config = stopped_while_plotting
  workdir = str(tmp_path / 'w')
  shutil.copytree(source, workdir)
  score = evaluate_lib.evaluate

  def with_nonfinite(*args, **kwargs):
    results, panels, frame = score(*args, **kwargs)
    results['val_mae'], results['val_rmse'] = float('nan'), np.float32('inf')
    return results, panels, frame
  monkeypatch.setattr(evaluate_lib, 'evaluate', with_nonfinite)
  run_lib.train_and_evaluate(config, workdir, progress=False)
  metrics = _strict_json(os.path.join(workdir, 'metrics.json'))
  assert metrics['val_mae'] is None and metrics['val_rmse'] is None, (
      f'non-finite scores should be null in metrics.json: val_mae={metrics["val_mae"]!r}, '
      f'val_rmse={metrics["val_rmse"]!r}')
