"""`rnnjax.tensorboard`: the learning rate per epoch against the schedule's formula, and event
files read back by hand (`conftest.read_events`) holding each epoch once across a kill and a
resume. Runs that write them are checked in tests/test_run.py (one model),
tests/test_ensemble.py (a sweep) and tests/test_checkpoint.py (killed and resumed)."""
import math
import os

import numpy as np
import pytest

from conftest import read_events, tiny_config
from rnnjax import errors
from rnnjax import tensorboard


def _warmup_cosine(step, warmup, total):
  """optax.warmup_cosine_decay_schedule(0, 1, warmup, total, 0) by its formula."""
  if step < warmup:
    return step / warmup
  return 0.5 * (1 + math.cos(math.pi * min(step - warmup, total - warmup) / (total - warmup)))


def test_learning_rate_per_epoch_is_each_members_rate_times_the_schedules_epoch_mean():
  config = tiny_config(**{'train.epochs': 4, 'train.lr_schedule': 'cosine',
                          'train.warmup_epochs': 1})
  # Member 1 steps through 2 batches an epoch of a schedule built for 3 (a shorter fold's).
  got = tensorboard.epoch_learning_rates(config, [1e-3, 2e-3], [3, 2], schedule_batches=3)
  want = np.array([[rate * np.mean([_warmup_cosine(s, 3, 12) for s in range(e * n, (e + 1) * n)])
                    for e in range(4)] for rate, n in ((1e-3, 3), (2e-3, 2))])
  np.testing.assert_allclose(got, want, rtol=1e-6, err_msg='learning rate per epoch')
  constant = tensorboard.epoch_learning_rates(tiny_config(), [1e-3, 1e-2], 5)
  np.testing.assert_array_equal(constant, [[1e-3] * 3, [1e-2] * 3])


def test_scalars_leave_out_epochs_a_member_did_not_train_and_unrecorded_grad_norms():
  history = {'loss': [[1.0, 2.0], [3.0, 4.0]], 'val_loss': [[5.0, 6.0], [7.0, 8.0]],
             'grad_norm': [[np.nan, 0.5], [0.25, 0.75]], 'active': [[True, True], [True, False]]}
  rows = tensorboard.scalars(history, 3, learning_rate_ME=[[9, 9, 0.1, 0.2], [9, 9, 0.3, 0.4]],
                             member_axis=True)
  assert rows == [
      ('loss/member0', 3, 1.0), ('val_loss/member0', 3, 5.0),
      ('learning_rate/member0', 3, 0.1),
      ('loss/member1', 3, 3.0), ('val_loss/member1', 3, 7.0),
      ('learning_rate/member1', 3, 0.3), ('grad_norm/member1', 3, 0.25),
      ('loss/member0', 4, 2.0), ('val_loss/member0', 4, 6.0),
      ('learning_rate/member0', 4, 0.2), ('grad_norm/member0', 4, 0.5)], rows
  single = tensorboard.scalars({'loss': [1.0], 'active': [True]}, 1)
  assert single == [('loss', 1, 1.0)], single


def _history(epochs, offset=0.0):
  """[2, len(epochs)] loss and grad_norm of two members at `epochs` (1-based)."""
  e = np.asarray(epochs, np.float32)
  return {'loss': np.stack([e + offset, 10 * e + offset]), 'grad_norm': np.stack([e, e]),
          'active': np.ones((2, len(e)), bool)}


def test_a_run_killed_after_logging_past_its_checkpoint_logs_each_epoch_once_on_resume(tmp_path):
  """Epochs 1-4 logged, the checkpoint holding 2, the process gone without closing its file
  (and a temporary file of a start cut short left behind): the resumed run's start writes the
  checkpoint's 2 epochs, then epochs 3-4 trained again: one file, each epoch once, the values
  the resumed run computed."""
  first = tensorboard.EventLog(str(tmp_path), member_axis=True)
  first.start(_history([]))
  first.append(_history([1, 2]), 1)
  first.append(_history([3, 4], offset=0.5), 3)  # past the checkpoint: trained again below
  folder = tmp_path / tensorboard.FOLDER
  (folder / '.tmp-events.out.events.1.host').write_bytes(b'half a start')
  assert len(read_events(folder)) == 16

  resumed = tensorboard.EventLog(str(tmp_path), member_axis=True)
  resumed.start(_history([1, 2]))
  resumed.append(_history([3, 4]), 3)
  resumed.close()
  first.close()
  assert os.listdir(folder) == [os.path.basename(resumed.path)], os.listdir(folder)
  rows = read_events(folder)
  keys = [(tag, step) for tag, step, _ in rows]
  assert len(keys) == len(set(keys)) == 16, f'epochs logged twice or missing: {sorted(keys)}'
  loss = {step: value for tag, step, value in rows if tag == 'loss/member1'}
  assert loss == {1: 10.0, 2: 20.0, 3: 30.0, 4: 40.0}, (
      f'member 1\'s loss should be the resumed run\'s at every epoch: {loss}')


def test_a_log_that_fails_to_start_leaves_the_previous_file(tmp_path, monkeypatch):
  log = tensorboard.EventLog(str(tmp_path))
  log.start({'loss': np.ones(2), 'active': np.ones(2, bool)})
  log.close()
  before = read_events(tmp_path / tensorboard.FOLDER)

  def fail(*args, **kwargs):
    raise OSError(28, 'No space left on device')
  monkeypatch.setattr(os, 'replace', fail)
  with pytest.raises(errors.WriteError, match='no space left on device'):
    tensorboard.EventLog(str(tmp_path)).start({'loss': np.ones(3), 'active': np.ones(3, bool)})
  assert os.listdir(tmp_path / tensorboard.FOLDER) == [os.path.basename(log.path)]
  assert read_events(tmp_path / tensorboard.FOLDER) == before
