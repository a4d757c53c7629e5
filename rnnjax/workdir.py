"""The workdir: atomic writes, the config it belongs to, and refusing another run's workdir.

A workdir holds one run. `prepare` checks that it can be written, refuses a config that
differs from the one in its `config.json` or inside its checkpoints (naming the keys that
differ) unless told to overwrite, and only then writes `config.json`, once. Every file is
written through a temporary file and renamed into place, so a kill never leaves half a file.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Callable

import jax
from jax.experimental import multihost_utils

from rnnjax import checkpoint as ckpt_lib
from rnnjax import config as config_lib
from rnnjax.errors import UserError

OUTPUTS = ('config.json', 'history.csv', 'metrics.json', 'loss.png', 'predictions.png',
           'backtest.csv', 'backtest.json', 'backtest.png', ckpt_lib.LATEST_DIR, ckpt_lib.BEST_DIR)
# The key that marks a workdir's run as something other than train.py's (e.g. 'backtest') in
# its config.json and checkpoints, so one command never resumes the other's checkpoints.
KIND_KEY = 'run'


def recorded_config(config, kind: str = 'train') -> str:
  """The JSON a workdir records for `config`: the config, plus KIND_KEY unless kind is 'train'."""
  if kind == 'train':
    return config_lib.to_json(config)
  return json.dumps({**json.loads(config_lib.to_json(config)), KIND_KEY: kind}, sort_keys=True,
                    indent=1)


def _with_defaults(recorded: dict) -> dict:
  """A recorded config with the keys added to rnnjax since it was written at their defaults,
  so an older run's workdir is not taken for another run's; as recorded if it cannot be read."""
  kind = recorded.get(KIND_KEY)
  rest = {k: v for k, v in recorded.items() if k != KIND_KEY}
  try:
    full = json.loads(config_lib.to_json(config_lib.from_json(json.dumps(rest))))
  except Exception:  # noqa: BLE001 - a key rnnjax no longer has: compared as written
    return recorded
  return full if kind is None else {**full, KIND_KEY: kind}


def atomic_write(path: str, write: Callable[[str], None]) -> None:
  """Writes through a temporary file in the same directory, then renames it into place.

  Args:
    path: the file to write.
    write: called with the temporary file's path; writes the whole content there.
  """
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-', suffix=os.path.splitext(path)[1])
  os.close(fd)
  try:
    write(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes files private; outputs are ordinary files
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def write_text(path: str, text: str) -> None:
  """`text` into `path`, atomically."""
  def write(tmp):
    with open(tmp, 'w') as f:
      f.write(text)
  atomic_write(path, write)


def config_diff(old: dict, new: dict, prefix: str = '') -> list[str]:
  """'key: old -> new' for every dotted key whose value differs between two config dicts."""
  out = []
  for k in sorted(set(old) | set(new)):
    a, b = old.get(k), new.get(k)
    if isinstance(a, dict) and isinstance(b, dict):
      out += config_diff(a, b, f'{prefix}{k}.')
    elif a != b:
      out.append(f'{prefix}{k}: {a!r} -> {b!r}')
  return out


def prepare(workdir: str, config, overwrite: bool, kind: str = 'train') -> None:
  """Checks the workdir can take this run; with `overwrite`, removes a previous run's outputs.

  A run's config is recorded twice: in config.json and inside every checkpoint. Either one
  differing from `config` means the workdir holds another run: refused (nothing is written),
  or with `overwrite` that run's outputs are removed. Only then is config.json written, once.

  `kind` names the command ('train', 'backtest'): a workdir of the other is refused too.

  Raises:
    UserError: the workdir is a file, lies inside a file or is unwritable, or holds a run with
      another config.
  """
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise UserError(f'--workdir={workdir!r} is a file, not a directory; choose another path.')
  parent = workdir if os.path.isdir(workdir) else os.path.dirname(os.path.abspath(workdir))
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise UserError(f'--workdir={workdir!r} lies inside {parent!r}, which is a file, not a '
                    'directory; choose another path.')
  if not os.access(parent, os.W_OK | os.X_OK):
    raise UserError(f'--workdir={workdir!r} cannot be written ({parent!r} is not writable).')
  saved = os.path.join(workdir, 'config.json')
  new = json.loads(recorded_config(config, kind))
  differs = False
  for where, old in _recorded_configs(workdir):
    diff = config_diff(_with_defaults(old), new)
    if diff and not overwrite:
      listed = '; '.join(diff[:5]) + (' ...' if len(diff) > 5 else '')
      raise UserError(
          (f'--workdir={workdir!r} holds a run with a different config ({listed}). '
           if where == 'config.json' else
           f'the checkpoints in {workdir!r} come from another config ({listed}). ')
          + 'Use another workdir, or pass --overwrite to replace that run.')
    differs = differs or bool(diff)
  if differs and jax.process_index() == 0:
    for name in OUTPUTS:
      path = os.path.join(workdir, name)
      if os.path.isdir(path):
        shutil.rmtree(path)
      elif os.path.exists(path):
        os.remove(path)
  os.makedirs(workdir, exist_ok=True)
  if not os.path.isfile(saved) and jax.process_index() == 0:
    write_text(saved, recorded_config(config, kind))
  if jax.process_count() > 1:  # every host sees the prepared workdir before going on
    multihost_utils.sync_global_devices('rnnjax: workdir prepared')


def _recorded_configs(workdir: str) -> list[tuple[str, dict]]:
  """(where, config dict) for config.json and the newest readable checkpoint, where present."""
  found = []
  saved = os.path.join(workdir, 'config.json')
  if os.path.isfile(saved):
    with open(saved) as f:
      try:
        found.append(('config.json', json.load(f)))
      except json.JSONDecodeError:
        found.append(('config.json', {'<unreadable config.json>': True}))
  in_checkpoints = ckpt_lib.saved_config(workdir)
  if in_checkpoints is not None:
    found.append(('checkpoints', json.loads(in_checkpoints)))
  return found
