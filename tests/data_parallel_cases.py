"""Data-parallel runs on 4 CPU devices against one device, run as a script by
tests/test_data_parallel.py in a process of its own (the device count is fixed when JAX starts):

  XLA_FLAGS=--xla_force_host_platform_device_count=4 python tests/data_parallel_cases.py WORKDIR

Each case asserts, naming what broke; the last line printed is 'all cases passed'.
"""
import os
import sys

import jax
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import conftest  # pylint: disable=wrong-import-position
from conftest import tiny_config  # pylint: disable=wrong-import-position
from rnnjax import data as data_lib  # pylint: disable=wrong-import-position
from rnnjax import devices, ensemble  # pylint: disable=wrong-import-position
from rnnjax import program as program_lib  # pylint: disable=wrong-import-position
from rnnjax import run as run_lib  # pylint: disable=wrong-import-position
from rnnjax import train as train_lib  # pylint: disable=wrong-import-position

EPOCHS = 2
RTOL, ATOL = 1e-5, 1e-6  # the order of float sums differs between one device and several


def trained(**overrides):
  """(saved state, history, mesh) of tiny_config with `overrides` after EPOCHS epochs."""
  config = tiny_config(**{'train.epochs': EPOCHS, **overrides})
  members = ensemble.plan_members(config)
  data = data_lib.prepare(config.data)
  mesh = devices.training_mesh(config, None if members is None else members.size)
  trainer = train_lib.make_trainer(config, data, data_shards=devices.data_shards(mesh))
  program = program_lib.make_program(trainer, config, members, mesh)
  state, history = program.run(program.init(), EPOCHS)
  return devices.to_host(program.to_saved(state)), devices.to_host(history), mesh


def one_model_on_four_devices_equals_one_device():
  """Dropout on: the same windows and masks reach each window on 4 devices as on 1."""
  one, one_history, one_mesh = trained(**{'mesh.data': 1})
  four, four_history, four_mesh = trained()  # mesh.data 0: every device for one model
  assert one_mesh is None and dict(four_mesh.shape) == {'members': 1, 'data': 4}, (
      f'meshes: {one_mesh}, {four_mesh}')
  conftest.assert_trees_close(four, one, '4 devices against 1: the training state', RTOL, ATOL)
  conftest.assert_trees_close(four_history, one_history, '4 devices against 1: the history',
                              RTOL, ATOL)


def members_on_a_two_by_two_mesh_equal_single_runs():
  """Two seeds, each split over 2 devices, with drawn epochs and a validation subset: each
  member equals its seed trained alone."""
  drawn = {'train.steps_per_epoch': 3, 'train.val_windows': 50}
  both, history, mesh = trained(**{'num_seeds': 2, 'mesh.members': 2, 'mesh.data': 2, **drawn})
  assert dict(mesh.shape) == {'members': 2, 'data': 2}, f'mesh: {mesh}'
  for k in range(2):
    alone, alone_history, _ = trained(**{'mesh.data': 1, 'train.seed': k, **drawn})
    member = jax.tree.map(lambda a, k=k: a[k], both)
    conftest.assert_trees_close(member, alone, f'member {k} of the 2 x 2 mesh: state', RTOL, ATOL)
    conftest.assert_trees_close(jax.tree.map(lambda a, k=k: a[k], history), alone_history,
                                f'member {k} of the 2 x 2 mesh: history', RTOL, ATOL)


def killed_data_parallel_run_resumes_as_uninterrupted(workdir):
  """A run on 4 devices that dies after its epoch-2 checkpoint, run again, ends bit-identical to
  one that never stopped."""
  config = tiny_config(**{'train.epochs': 4, 'train.checkpoint_every': 2})
  reference = os.path.join(workdir, 'uninterrupted')
  run_lib.train_and_evaluate(config, reference, progress=False)
  resumed = os.path.join(workdir, 'resumed')
  with pytest.MonkeyPatch.context() as patch:
    conftest.crash_after_checkpoint(patch, 2)
    try:
      run_lib.train_and_evaluate(config, resumed, progress=False)
      raise AssertionError('the run did not stop after its epoch-2 checkpoint')
    except conftest.Crashed:
      pass
  assert conftest.checkpoint_steps(resumed) == [2], conftest.checkpoint_steps(resumed)
  run_lib.train_and_evaluate(config, resumed, progress=False)
  conftest.assert_same_run(resumed, reference, 'data-parallel run killed after epoch 2')


def main(workdir):
  assert jax.device_count() == 4, f'{jax.device_count()} devices; run with 4 (see the docstring)'
  one_model_on_four_devices_equals_one_device()
  members_on_a_two_by_two_mesh_equal_single_runs()
  killed_data_parallel_run_resumes_as_uninterrupted(workdir)
  print('all cases passed')


if __name__ == '__main__':
  np.seterr(all='ignore')
  main(sys.argv[1])
