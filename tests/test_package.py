"""The package's shape: every module says what it owns, and imports flow one way (no cycles)."""
import ast
import importlib
import os
import pkgutil

import rnnjax

PACKAGE_DIR = os.path.dirname(rnnjax.__file__)


def _modules():
  return sorted(m.name for m in pkgutil.iter_modules([PACKAGE_DIR]))


def _imports(name: str) -> set[str]:
  """The rnnjax modules `rnnjax/<name>.py` imports, at any depth of its code."""
  with open(os.path.join(PACKAGE_DIR, f'{name}.py')) as f:
    tree = ast.parse(f.read())
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module == 'rnnjax':
      found |= {alias.name for alias in node.names}
    elif isinstance(node, ast.ImportFrom) and (node.module or '').startswith('rnnjax.'):
      found.add(node.module.split('.')[1])
    elif isinstance(node, ast.Import):
      found |= {a.name.split('.')[1] for a in node.names if a.name.startswith('rnnjax.')}
  return found


def test_no_import_cycle():
  graph = {name: _imports(name) for name in _modules()}
  assert graph['run'] >= {'program', 'evaluate', 'workdir'}, graph['run']  # the parser sees them
  state = {}

  def visit(name, path):
    if state.get(name) == 'done':
      return
    assert state.get(name) != 'open', f'import cycle: {" -> ".join(path + [name])}'
    state[name] = 'open'
    for other in sorted(graph[name]):
      visit(other, path + [name])
    state[name] = 'done'
  for name in graph:
    visit(name, [])


def test_every_module_opens_with_a_docstring_saying_what_it_owns():
  for name in _modules():
    module = importlib.import_module(f'rnnjax.{name}')
    doc = (module.__doc__ or '').strip()
    assert len(doc.split()) >= 8, f'rnnjax/{name}.py has no opening docstring saying what it owns'
