"""The package's shape: every module says what it owns, imports flow one way (no cycles), no
module reads another's private names, and each stays small enough to read in one sitting."""
import ast
import importlib
import os
import pkgutil

import rnnjax

PACKAGE_DIR = os.path.dirname(rnnjax.__file__)


def _modules():
  return sorted(m.name for m in pkgutil.iter_modules([PACKAGE_DIR]))


# A module longer than this holds more than one concern: one file per concern, named for it.
MAX_LINES = 400


def _tree(name: str) -> ast.Module:
  with open(os.path.join(PACKAGE_DIR, f'{name}.py')) as f:
    return ast.parse(f.read())


def _imports(name: str) -> set[str]:
  """The rnnjax modules `rnnjax/<name>.py` imports, at any depth of its code."""
  tree = _tree(name)
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


def test_every_module_is_at_most_max_lines_long():
  lengths = {}
  for name in _modules():
    with open(os.path.join(PACKAGE_DIR, f'{name}.py')) as f:
      lengths[name] = sum(1 for _ in f)
  over = {name: n for name, n in lengths.items() if n > MAX_LINES}
  assert not over, (f'modules over {MAX_LINES} lines: {over}; split each along a seam of its '
                    'concerns, into modules named for them')


def _private_reads(name: str) -> list[str]:
  """`module._name` and `from rnnjax.module import _name` in rnnjax/<name>.py, for rnnjax
  modules other than its own."""
  tree = _tree(name)
  aliases, found = {}, []
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module == 'rnnjax':
      aliases.update({alias.asname or alias.name: alias.name for alias in node.names})
    elif isinstance(node, ast.ImportFrom) and (node.module or '').startswith('rnnjax.'):
      found += [f'from {node.module} import {alias.name}' for alias in node.names
                if alias.name.startswith('_')]
    elif isinstance(node, ast.Import):
      aliases.update({alias.asname: alias.name.split('.')[1] for alias in node.names
                      if alias.name.startswith('rnnjax.') and alias.asname})
  for node in ast.walk(tree):
    if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
        and node.value.id in aliases and aliases[node.value.id] != name
        and node.attr.startswith('_') and not node.attr.startswith('__')):
      found.append(f'{node.value.id}.{node.attr} (line {node.lineno})')
  return found


def test_no_module_reads_another_modules_private_names():
  reads = {name: found for name in _modules() if (found := _private_reads(name))}
  assert not reads, (f'private names read across modules: {reads}; make the name public where '
                     'it is shared, or move the code that needs it')
