"""The workdir: atomic writes, the config it belongs to, and refusing another run's workdir.

A workdir holds one run. `lock` keeps a second process off it while a run works there.
`prepare` checks that it can be written, refuses a config that
differs from the one in its `config.json` or inside its checkpoints (naming the keys that
differ) unless told to overwrite, and only then writes `config.json`, once. Every file is
written through a temporary file and renamed into place, so a kill never leaves half a file;
`remove_leftovers` removes the temporary files (and Orbax's temporary checkpoint folders) that a
killed run left. A write the machine refuses (a full disk) raises `errors.WriteError`, exit
code 74. JSON files are written by `write_json`, which writes non-finite numbers as null.
"""
from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import glob
import json
import logging
import math
import os
import shlex
import shutil
import socket
import sys
import tempfile
import time
from typing import Any, Callable

import jax
from jax.experimental import multihost_utils
import numpy as np

from rnnjax import checkpoint as ckpt_lib
from rnnjax import config as config_lib
from rnnjax import errors
from rnnjax.errors import UserError

OUTPUTS = ('config.json', 'history.csv', 'metrics.json', 'loss.png', 'predictions.png',
           'backtest.csv', 'backtest.json', 'backtest.png', 'tensorboard', ckpt_lib.LATEST_DIR,
           ckpt_lib.BEST_DIR)
# The key that marks a workdir's run as something other than train.py's (e.g. 'backtest') in
# its config.json and checkpoints, so one command never resumes the other's checkpoints.
KIND_KEY = 'run'
TMP_PREFIX = '.tmp-'  # atomic_write's temporary files: '.tmp-' + random + the file's extension


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

  Raises:
    errors.WriteError: the OS refused a write (e.g. the disk is full), naming `path`; the
      file there before, if any, is unchanged, and the temporary file is removed.
  """
  directory = os.path.dirname(os.path.abspath(path))
  tmp = None
  try:
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=TMP_PREFIX, suffix=os.path.splitext(path)[1])
    os.close(fd)
    write(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes files private; outputs are ordinary files
    os.replace(tmp, path)
  except OSError as e:
    raise errors.write_error(path, e) from e
  finally:
    if tmp is not None and os.path.exists(tmp):
      os.remove(tmp)


def write_text(path: str, text: str) -> None:
  """`text` into `path`, atomically."""
  def write(tmp):
    with open(tmp, 'w') as f:
      f.write(text)
  atomic_write(path, write)


def finite_json(value: Any) -> Any:
  """`value` (nested dicts, lists, tuples, numbers, strings...) with every NaN and infinity, of
  Python or NumPy, as None, and NumPy numbers as Python's: what JSON can hold."""
  if isinstance(value, dict):
    return {k: finite_json(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [finite_json(v) for v in value]
  if isinstance(value, (np.ndarray, np.generic)):
    return finite_json(value.tolist())
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def json_text(value: Any) -> str:
  """`value` as JSON text, keys sorted, non-finite numbers as null (Python's json would write
  NaN and Infinity, which are not JSON)."""
  return json.dumps(finite_json(value), indent=1, sort_keys=True, allow_nan=False)


def write_json(path: str, value: Any) -> None:
  """`value` into `path` as JSON (`json_text`), atomically: every JSON file a run writes."""
  write_text(path, json_text(value))


def remove_leftovers(workdir: str) -> list[str]:
  """Removes what killed runs leave in `workdir`: `atomic_write`'s temporary files ('.tmp-*', a
  SIGKILL cannot be caught) and Orbax's temporary checkpoint folders in checkpoints/ and best/.
  Nothing else is touched. Call it only while this run holds the workdir (`lock`).

  Returns:
    the removed paths.
  """
  removed = []
  for path in glob.glob(os.path.join(glob.escape(workdir), TMP_PREFIX + '*')):
    if os.path.isfile(path) and not os.path.islink(path):
      os.remove(path)
      removed.append(path)
  for name in (ckpt_lib.LATEST_DIR, ckpt_lib.BEST_DIR):
    removed += ckpt_lib.remove_temporaries(os.path.join(workdir, name))
  return removed


def _refuse_empty(workdir: str) -> None:
  if not workdir:  # '' would name the current directory's files
    raise UserError('--workdir is empty: name the directory for the run\'s checkpoints and '
                    'outputs, e.g. --workdir=runs/seed_gru.')


def make_workdir(workdir: str) -> None:
  """Creates `workdir` (and the folders above it) if missing; a place that takes no new folders
  (/proc, /sys, a read-only mount) is the user's to change, a full disk is not.

  Raises:
    UserError: `workdir` is empty or cannot be created there (exit 2; nothing is created).
    errors.WriteError: the disk is full or failing (exit 74).
  """
  _refuse_empty(workdir)
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
      raise errors.write_error(workdir, e) from e
    parent = os.path.dirname(os.path.abspath(workdir))
    while not os.path.exists(parent):
      parent = os.path.dirname(parent)
    reason = f'{(e.strerror or str(e)).lower()}, {errno.errorcode.get(e.errno, e.errno)}'
    raise UserError(f'--workdir={workdir!r} cannot be created in {parent!r} ({reason}); choose a '
                    'directory on an ordinary, writable disk.') from e


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


def check_writable(workdir: str) -> None:
  """Raises UserError unless `workdir` is, or can be made, a writable directory."""
  _refuse_empty(workdir)
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


LOCK_FILE = '.lock'  # in the workdir while a run holds it; never a run output


@contextlib.contextmanager
def lock(workdir: str, command: str | None = None):
  """Holds `workdir` for one run: another process that asks for it meanwhile is refused at once.

  An advisory `fcntl.flock` on `workdir/.lock`. The kernel drops it when the holder ends,
  however it ends (an exception, a signal, `os._exit`, SIGKILL), so a killed run never blocks
  the next one. The file's content (pid, host, command, start time) only informs the refused
  run's message; the file is removed on release (a stale one left by a killed run is taken
  over). Take the lock before `prepare`, which may remove a previous run's outputs, and keep it
  until the last file is written. Directories it had to create are removed again if the run
  left nothing in them. predict.py only reads a workdir and takes no lock.

  With several processes of one run (`--distributed`, `jax.process_count() > 1`) only process
  0 takes the lock: the others belong to the same run and share it.

  Args:
    workdir: the run's directory; created if missing.
    command: the command a refused run is told about; by default this process's command line.

  Raises:
    UserError: another process holds `workdir`, or it cannot be a writable directory.
  """
  if jax.process_index() != 0:
    yield
    return
  check_writable(workdir)
  created = []  # the directories made here, deepest first
  directory = os.path.abspath(workdir)
  while not os.path.exists(directory):
    created.append(directory)
    directory = os.path.dirname(directory)
  path = os.path.join(workdir, LOCK_FILE)
  fd = _acquire(workdir, path)
  if fd is None:  # the filesystem has no locks: run as before, unguarded
    yield
    return
  try:
    holder = {'pid': os.getpid(), 'host': socket.gethostname(),
              'command': shlex.join(sys.orig_argv) if command is None else command,
              'started': datetime.datetime.now().astimezone().isoformat(' ', 'seconds')}
    os.ftruncate(fd, 0)
    os.write(fd, (json.dumps(holder, indent=1) + '\n').encode())
    yield
  finally:
    if _same_file(fd, path):  # unlinked while held: a process that opened it retries (_acquire)
      os.remove(path)
    for directory in created:
      try:
        os.rmdir(directory)
      except OSError:  # the run left files there (or another run took it): kept
        break
    os.close(fd)


def _acquire(workdir: str, path: str) -> int | None:
  """An open descriptor of `path` holding its flock (None where the filesystem has no locks).

  A holder removes the file before it lets go, so a lock won on a file no longer at `path`
  guards nothing: it is dropped and taken again on the file that is there now.
  """
  while True:
    make_workdir(workdir)
    try:
      fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except FileNotFoundError:  # the workdir was removed by a run that created it: again
      continue
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      message = _refusal(workdir, fd)
      os.close(fd)
      raise UserError(message) from None
    except OSError as e:
      if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP):
        raise
      os.close(fd)
      logging.warning('cannot lock %s (%s): nothing stops a second run on this workdir '
                      'meanwhile; start one run at a time.', path, e.strerror)
      return None
    if _same_file(fd, path):
      return fd
    os.close(fd)


def _same_file(fd: int, path: str) -> bool:
  """Whether `path` still names the file open as `fd`."""
  try:
    named, opened = os.stat(path), os.fstat(fd)
  except FileNotFoundError:
    return False
  return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _refusal(workdir: str, fd: int) -> str:
  """The message for a run refused `workdir`, naming the holder from the lock file `fd`."""
  holder = None
  for _ in range(20):  # the holder writes who it is just after it takes the lock
    try:
      holder = json.loads(os.pread(fd, 1 << 16, 0))
      break
    except ValueError:
      time.sleep(0.05)
  if not isinstance(holder, dict):
    who, stop = 'another process (it did not say which)', 'stop it'
  else:
    who = (f'process {holder.get("pid")} on host {holder.get("host")!r}, started '
           f'{holder.get("started")}: {holder.get("command")}')
    stop = f'stop it (kill {holder.get("pid")} on {holder.get("host")})'
  return (f'--workdir={workdir!r} is in use by another run, {who}. Two runs in one workdir '
          f'would overwrite each other\'s checkpoints: wait for it to end, {stop}, or use '
          'another --workdir.')


def prepare(workdir: str, config, overwrite: bool, kind: str = 'train') -> None:
  """Checks the workdir can take this run; with `overwrite`, removes a previous run's outputs.

  A run's config is recorded twice: in config.json and inside every checkpoint. Either one
  differing from `config` means the workdir holds another run: refused (nothing is written),
  or with `overwrite` that run's outputs are removed. Only then is config.json written, once.

  `kind` names the command ('train', 'backtest'): a workdir of the other is refused too.

  Raises:
    UserError: the workdir is a file, lies inside a file or is unwritable, or holds a run with
      another config.
    UserError, errors.WriteError: `make_workdir`'s (empty; cannot be created; disk full).
  """
  check_writable(workdir)
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
  make_workdir(workdir)
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
