"""Exceptions a run ends with on purpose, each with a message for the user and an exit code.

Scripts catch `UserError` (and its kinds), print the message and exit with `exit_code`, without
a traceback; any other exception is a bug and keeps its traceback. A write the machine refused
becomes a `WriteError` that says why and what to do (`write_error`).
"""
from __future__ import annotations

import errno
import os
import re

# TensorStore, which writes Orbax's arrays, reports an OS error inside its message.
_TENSORSTORE_ERRNO = re.compile(r"os_error_code='?(\d+)")


class UserError(ValueError):
  """A mistake in the input, with a message that says what was wrong and how to fix it."""
  exit_code = 2


class Diverged(UserError):
  """The loss went non-finite; the last good checkpoint is kept."""
  exit_code = 3


class WriteError(UserError, OSError):
  """Writing into the workdir failed for a reason of the machine, not of the input: a full disk,
  a quota, a read-only or failing file system. Its exit code is 74 (EX_IOERR in sysexits.h),
  apart from input errors' 2. An OSError too, with the errno behind it (None if unknown)."""
  exit_code = 74

  def __init__(self, message: str, code: int | None = None):
    super().__init__(message)
    self.errno = code


def os_error_code(error: BaseException) -> int | None:
  """The errno behind `error`: an OSError's, or one TensorStore wrote into its message, found
  along the chain of causes; None when `error` is no OS error."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno:
      return error.errno
    found = _TENSORSTORE_ERRNO.search(str(error))
    if found:
      return int(found.group(1))
    error = error.__cause__ or error.__context__
  return None


def write_error(path: str, error: BaseException | int) -> WriteError:
  """'cannot write PATH: the OS's reason (ENAME). What to do.' for an OS error (or its errno)."""
  code = error if isinstance(error, int) else os_error_code(error)
  if code is None:  # an OSError without an errno: its own words
    reason = str(error) or type(error).__name__
  else:
    reason = os.strerror(code)
    reason = f'{reason[:1].lower()}{reason[1:]} ({errno.errorcode.get(code, code)})'
  if code in (errno.ENOSPC, errno.EDQUOT):
    advice = 'Free space on that disk, or use one with more room'
  elif code in (errno.EROFS, errno.EACCES, errno.EPERM):
    advice = 'That place refuses writes: make it writable, or use another one'
  else:
    advice = 'Check that disk'
  return WriteError(f'cannot write {path!r}: {reason}. {advice}.', code)


class Interrupted(UserError):
  """SIGTERM or SIGINT arrived; a checkpoint was saved and the run can be resumed."""

  def __init__(self, message: str, signum: int):
    super().__init__(message)
    self.exit_code = 128 + signum


def exit_on_user_error(fn):
  """Runs `fn()`; a UserError becomes its message on stderr and its exit code, no traceback."""
  import sys
  try:
    return fn()
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    exit_now(e.exit_code)


def exit_now(code: int = 0):
  """Ends the process with `code`, skipping the interpreter's teardown of its modules.

  Runs the atexit handlers (logging, JAX and Orbax clean-ups) and flushes stdout and stderr,
  then `os._exit`: Python's own shutdown frees every imported module (JAX, SciPy,
  matplotlib...) object by object, which takes a while (docs/benchmarks.md). Scripts call it
  when every file they write is closed.
  """
  import atexit
  import os
  import sys
  atexit._run_exitfuncs()  # pylint: disable=protected-access
  for stream in (sys.stdout, sys.stderr):
    stream.flush()
  os._exit(code)


def last_config_value_wins(argv: list[str]) -> list[str]:
  """`argv` with every `--config.KEY` flag given more than once kept only at its last place.

  ml_collections joins repeated flags of a tuple field into one tuple, so
  `--config.model.hidden_sizes="(8,)" --config.model.hidden_sizes="(4,4)"` would train an
  (8, 4, 4) model. In rnnjax a repeated flag means what it means for every other flag: the last
  value wins. A tuple is given whole: `--config.model.hidden_sizes="(4,4)"`.
  """
  groups = []  # (key or None, the tokens of one flag)
  i = 0
  while i < len(argv):
    token = argv[i]
    if token.startswith('--config.'):
      key, eq, _ = token.partition('=')
      takes_next = not eq and i + 1 < len(argv) and not argv[i + 1].startswith('-')
      groups.append((key, argv[i:i + 1 + takes_next]))
      i += 1 + takes_next
    else:
      groups.append((None, [token]))
      i += 1
  last = {key: k for k, (key, _) in enumerate(groups) if key is not None}
  return [token for k, (key, tokens) in enumerate(groups) if key is None or last[key] == k
          for token in tokens]


def error_text(error: BaseException) -> str:
  """What an exception says, as a user reads it: the innermost wrapped exception's own text,
  without repr quotes or escaped newlines (ml_collections wraps a KeyError in an
  AttributeError, whose str() is the repr of the KeyError's)."""
  while error.args and isinstance(error.args[0], BaseException):
    error = error.args[0]
  text = error.args[0] if len(error.args) == 1 and isinstance(error.args[0], str) else str(error)
  return ' '.join(text.split())


def parse_flags_or_exit(argv):
  """absl flags parser for `app.run(main, flags_parser=...)` that reports a bad command line
  (an unknown or mistyped `--config.x.y` key, a missing or broken config file, a stray
  positional argument) as a message and exit code 2, instead of a traceback or absl's page of
  usage. A `--config.KEY` given twice takes its last value (`last_config_value_wins`)."""
  import sys
  from absl import flags
  hint = (f'Run {argv[0]} --helpfull for the flags; config keys are listed in the README.')
  try:
    rest = flags.FLAGS(last_config_value_wins(argv))
  except Exception as e:  # noqa: BLE001 - whatever the parser or config file raised
    inner = e
    while inner.args and isinstance(inner.args[0], BaseException):
      inner = inner.args[0]
    kind = 'unknown config key' if isinstance(inner, KeyError) else type(e).__name__
    print(f'error: bad command line: {kind}: {error_text(e)}\n{hint}', file=sys.stderr)
    sys.exit(2)
  if len(rest) > 1:
    print(f'error: bad command line: unexpected argument(s) {rest[1:]}: every input is a flag '
          f'(--workdir=DIR, --config.KEY=VALUE, ...); quote a value that holds spaces.\n{hint}',
          file=sys.stderr)
    sys.exit(2)
  return rest


def config_or_exit(config):
  """The config from `config_flags`, or exit 2 with its message if the file failed to load
  (config_flags defers that error to the first use of the config)."""
  import sys
  try:
    config.to_dict()
  except Exception as e:  # noqa: BLE001 - whatever loading the config file raised
    print(f'error: could not load the --config file: {error_text(e)}', file=sys.stderr)
    sys.exit(2)
  return config
