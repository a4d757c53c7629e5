"""rnnjax.workdir: atomic writes, and a workdir that cannot hold the run refused with its reason."""
import json
import os

import pytest

from conftest import tiny_config
from rnnjax import workdir as workdir_lib
from rnnjax.errors import UserError


def test_workdir_inside_a_file_names_the_file(tmp_path):
  blocker = tmp_path / 'notes.txt'
  blocker.write_bytes(b'precious\n')
  with pytest.raises(UserError, match=r"lies inside .*notes.txt.*which is a file"):
    workdir_lib.prepare(str(blocker / 'runs' / 'w'), tiny_config(), overwrite=False)
  assert blocker.read_bytes() == b'precious\n' and sorted(os.listdir(tmp_path)) == ['notes.txt']


def test_atomic_write_replaces_whole_files_and_leaves_no_temporary(tmp_path):
  path = tmp_path / 'metrics.json'
  workdir_lib.write_text(str(path), 'first')
  workdir_lib.write_text(str(path), 'second')
  assert path.read_text() == 'second'
  assert sorted(os.listdir(tmp_path)) == ['metrics.json'], os.listdir(tmp_path)

  def fails(tmp):
    with open(tmp, 'w') as f:
      f.write('half')
    raise OSError('disk full')
  with pytest.raises(OSError):
    workdir_lib.atomic_write(str(path), fails)
  assert path.read_text() == 'second', 'a failed write replaced the file'
  assert sorted(os.listdir(tmp_path)) == ['metrics.json'], 'a failed write left a temporary file'


def test_a_config_json_from_before_a_key_existed_is_the_same_run(tmp_path):
  """config.json written before `backtest` existed (and a key added at its default): the same
  run resumes there; a value that differs from the default is still another run's."""
  workdir = str(tmp_path / 'w')
  workdir_lib.prepare(workdir, tiny_config(), overwrite=False)
  path = os.path.join(workdir, 'config.json')
  with open(path) as f:
    recorded = json.load(f)
  del recorded['backtest']
  with open(path, 'w') as f:
    json.dump(recorded, f)
  workdir_lib.prepare(workdir, tiny_config(), overwrite=False)  # not refused
  with pytest.raises(UserError, match=r'backtest.folds: 4 -> 6'):
    workdir_lib.prepare(workdir, tiny_config(**{'backtest.folds': 6}), overwrite=False)
  with pytest.raises(UserError, match=r"run: None -> 'backtest'"):
    workdir_lib.prepare(workdir, tiny_config(), overwrite=False, kind='backtest')
