"""Every Python block of the README and of docs/ runs as written, in a fresh process."""
import glob
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

DOCUMENTS = ['README.md'] + sorted(
    os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, 'docs', '*.md')))
BLOCK = re.compile(r'^```python\n(.*?)^```$', re.MULTILINE | re.DOTALL)


def _blocks():
  for name in DOCUMENTS:
    with open(os.path.join(ROOT, name), encoding='utf-8') as f:
      text = f.read()
    for match in BLOCK.finditer(text):
      line = text.count('\n', 0, match.start()) + 1
      yield pytest.param(match.group(1), id=f'{name}:{line}')


BLOCKS = list(_blocks())


def test_the_readme_has_its_research_snippet():
  assert any('make_train' in block.values[0] for block in BLOCKS), (
      'no Python block of the README trains a model: the block pattern no longer matches')


def _readers_env():
  """This environment without the LLVM level 0 that tests/conftest.py adds to XLA_FLAGS: a
  reader runs the blocks with XLA's defaults, and the README's snippet trains more than it
  compiles, so at level 0 it takes about a fifth more CPU time (its training runs 3-4x slower)."""
  env = dict(os.environ)
  flags = [f for f in env.get('XLA_FLAGS', '').split()
           if f != '--xla_backend_optimization_level=0']
  if flags:
    env['XLA_FLAGS'] = ' '.join(flags)
  else:
    env.pop('XLA_FLAGS', None)
  return env


@pytest.mark.parametrize('code', BLOCKS)
def test_python_block_runs_as_written(code, tmp_path):
  """Run from a temporary folder, so a block may not rely on files of the checkout."""
  proc = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True,
                        text=True, timeout=600, env=_readers_env())
  assert proc.returncode == 0, f'the block failed:\n{code}\n{proc.stderr[-3000:]}'
