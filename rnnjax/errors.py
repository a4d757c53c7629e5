"""Exceptions a run ends with on purpose, each with a message for the user and an exit code.

Scripts catch `UserError` (and its kinds), print the message and exit with `exit_code`, without
a traceback; any other exception is a bug and keeps its traceback.
"""


class UserError(ValueError):
  """A mistake in the input, with a message that says what was wrong and how to fix it."""
  exit_code = 2


class Diverged(UserError):
  """The loss went non-finite; the last good checkpoint is kept."""
  exit_code = 3


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
    sys.exit(e.exit_code)
