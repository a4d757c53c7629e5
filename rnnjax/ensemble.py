"""Members: many seeds and sweeps of one model, trained as one `jit(vmap(train))` program.

`plan_members` turns `num_seeds` and `sweep` into a member plan: one seed and one set of
hyper-parameters per member (member k uses seed `train.seed + k`), checked before anything
compiles. `train_many` trains every member of a plan at once on one device; `rnnjax.program`
splits the members over devices and chunks of epochs for `rnnjax.training_loop`, and
`rnnjax.evaluate` scores them. A single run (num_seeds=1, no sweep) has no plan.
"""
from __future__ import annotations

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from rnnjax import config as config_lib
from rnnjax import config_checks
from rnnjax import dataset as dataset_lib
from rnnjax import train as train_lib
from rnnjax.errors import UserError


@dataclasses.dataclass(frozen=True)
class Members:
  """The plan of an ensemble: one seed and one set of hyper-parameters per member.

  Attributes:
    seeds: [M] int seeds, train.seed + k.
    hparams: dict name -> [M] float32 values (learning_rate, weight_decay, clip_norm, dropout).
    swept: names of the hyper-parameters that vary between members.
    folds: [M] backtest fold of each member (`rnnjax.backtest`), or None.
  """
  seeds: np.ndarray
  hparams: dict
  swept: tuple[str, ...]
  folds: np.ndarray | None = None

  @property
  def size(self) -> int:
    return len(self.seeds)

  def records(self) -> list[dict]:
    """One dict per member: index, seed, and the value of each swept hyper-parameter."""
    out = []
    for k, seed in enumerate(self.seeds):
      record = {'member': k, 'seed': int(seed)}
      if self.folds is not None:
        record['fold'] = int(self.folds[k])
      record.update({name: float(self.hparams[name][k]) for name in self.swept})
      out.append(record)
    return out


def plan_members(config) -> Members | None:
  """Members from `num_seeds` and `sweep`; None for a single run. Checks before any compile.

  Without `sweep.grid`, every swept list holds one value per member (`num_seeds` values). With
  `sweep.grid=True`, members are every combination of the swept lists, each trained with
  `num_seeds` seeds (member k = combination k // num_seeds).

  Raises:
    UserError: num_seeds < 1, a list of the wrong length, or a shape-changing key swept.
  """
  num_seeds = config.num_seeds
  if isinstance(num_seeds, bool) or not isinstance(num_seeds, int) or num_seeds < 1:
    raise UserError(f'num_seeds must be an integer >= 1, got {num_seeds!r}.')
  for name in config_lib.SHAPE_CHANGING:
    if config.sweep.get(name) is not None:
      raise UserError(f'sweep.{name} changes array shapes or the compiled program, so members '
                      'of one run cannot differ in it; train one workdir per value instead. '
                      f'Sweepable keys: {", ".join(config_lib.SWEEPABLE)}.')
  swept = {name: tuple(config.sweep[name]) for name in config_lib.SWEEPABLE
           if config.sweep[name] is not None}
  for name, values in swept.items():
    if not values:
      raise UserError(f'sweep.{name} is empty; give at least one value or leave it unset.')
    if not config.sweep.grid and len(values) != num_seeds:
      raise UserError(f'sweep.{name} has {len(values)} values but num_seeds={num_seeds}: give '
                      'one value per member, or set sweep.grid=True to train every combination.')
  if not swept and num_seeds == 1:
    return None
  base = {k: float(v) for k, v in train_lib.default_hparams(config).items()}
  if config.sweep.grid and swept:
    combos = list(itertools.product(*swept.values()))
    rows = [dict(zip(swept, combo, strict=True)) for combo in combos for _ in range(num_seeds)]
  else:
    rows = [{name: values[k] for name, values in swept.items()} for k in range(num_seeds)]
  hparams = {name: np.array([row.get(name, base[name]) for row in rows], np.float32)
             for name in base}
  probe = config.copy_and_resolve_references()
  # Every member's values must pass the same checks as a single run's; members that share
  # their values (seeds of one setting) are checked once.
  distinct = {tuple(sorted(row.items())): row for row in rows}.values()
  for row in distinct:
    with probe.unlocked():
      probe.train.learning_rate = float(row.get('learning_rate', base['learning_rate']))
      probe.train.weight_decay = float(row.get('weight_decay', base['weight_decay']))
      probe.train.clip_norm = float(row.get('clip_norm', base['clip_norm']))
      probe.model.dropout = float(row.get('dropout', base['dropout']))
    config_checks.validate(probe)
  seeds_M = config.train.seed + np.arange(len(rows))
  return Members(seeds=seeds_M, hparams=hparams, swept=tuple(swept))


def single_member(config) -> Members:
  """The plan of a one-member ensemble: seed train.seed, the config's hyper-parameters."""
  return Members(seeds=np.array([config.train.seed]),
                 hparams={k: np.array([v], np.float32)
                          for k, v in train_lib.default_hparams(config).items()},
                 swept=())


def member_keys(seeds: np.ndarray) -> np.ndarray:
  """[M, 2] uint32 keys: row k is `jax.random.PRNGKey(seeds[k])`, as a single run draws it."""
  return np.asarray(jax.jit(jax.vmap(jax.random.PRNGKey))(jnp.asarray(seeds, jnp.int32)))


def train_many(config, data: dataset_lib.Dataset, members: Members | None = None):
  """Trains every member in one program: `jit(vmap(make_train(config, data)))`.

  The same code path as a single run, so member k equals `jit(make_train(...))` with seed
  `train.seed + k` and its sweep values. For one device; `rnnjax.program.members_program`
  splits members over devices and chunks of epochs.

  Args:
    config: the run's config; members default to `plan_members(config)` (num_seeds, sweep).
    data: from `rnnjax.data.prepare`.
    members: an explicit member plan.

  Returns:
    (TrainState, history), every leaf with a leading member axis [M, ...].
  """
  members = members or plan_members(config) or single_member(config)
  train = train_lib.make_train(config, data)
  hparams = {k: jnp.asarray(v) for k, v in members.hparams.items()}
  return jax.jit(jax.vmap(train))(jnp.asarray(member_keys(members.seeds)), hparams)
