"""JAX's persistent compilation cache for rnnjax's programs: a rerun of the same shapes reads
its compiled programs from disk instead of compiling them again.

The scripts call `enable()` before anything compiles. The cache lives in
`$XDG_CACHE_HOME/rnnjax/jax` (`~/.cache/rnnjax/jax` when XDG_CACHE_HOME is unset). The
environment variable RNNJAX_COMPILATION_CACHE moves it (a folder) or turns it off (`off`, `0`,
`false`, `no` or empty); a cache folder already given to JAX itself (JAX_COMPILATION_CACHE_DIR or
`jax_compilation_cache_dir`) is used as it is. A cache must never break a run: a folder that
cannot be created or written leaves the run uncached, with a warning; an unreadable or corrupt
entry is a miss (JAX warns and compiles, `jax_raise_persistent_cache_errors` being off).
"""
from __future__ import annotations

import logging
import os
import tempfile

import jax

ENV_VAR = 'RNNJAX_COMPILATION_CACHE'
OFF = ('off', '0', 'false', 'no', '')


def default_dir(environ=None) -> str:
  """`$XDG_CACHE_HOME/rnnjax/jax`, or `~/.cache/rnnjax/jax`."""
  environ = os.environ if environ is None else environ
  base = environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
  return os.path.join(base, 'rnnjax', 'jax')


def chosen_dir(environ=None) -> str | None:
  """The folder RNNJAX_COMPILATION_CACHE (or the default) names; None when it is turned off."""
  environ = os.environ if environ is None else environ
  if ENV_VAR not in environ:
    return default_dir(environ)
  value = environ[ENV_VAR].strip()
  return None if value.lower() in OFF else os.path.expanduser(value)


def enable(environ=None) -> str | None:
  """Turns the persistent cache on for this process; returns its folder, or None when off.

  Every program is cached, however fast it compiled (`jax_persistent_cache_min_compile_time_secs`
  0, unless set in the environment): the run's init compiles in well under JAX's default
  threshold of 1 s. Call before the first compile.
  """
  environ = os.environ if environ is None else environ
  if jax.config.jax_compilation_cache_dir:  # the user gave JAX a cache already
    return jax.config.jax_compilation_cache_dir
  path = chosen_dir(environ)
  if path is None:
    return None
  try:
    os.makedirs(path, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path, prefix='.probe-'):
      pass
  except OSError as e:
    logging.warning('compilation cache %s cannot be written (%s); running without it. Set %s '
                    'to another folder, or to "off".', path, e.strerror or e, ENV_VAR)
    return None
  if 'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS' not in environ:
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
  jax.config.update('jax_compilation_cache_dir', path)
  return path
