"""The hyper-parameters a member can vary, and the optimizer that carries them: AdamW after a
global-norm clip, its learning rate scaled by the config's schedule.

`rnnjax.train` builds every run's optimizer here; members of a vmapped run each carry their own
learning rate, weight decay and clip norm in the optimizer state, and their dropout in the
training state.
"""
from __future__ import annotations

import jax.numpy as jnp
import optax

from rnnjax import errors

# Adam as Keras builds it: its epsilon is 1e-7 (optax's default is 1e-8).
ADAM_EPS = 1e-7


def default_hparams(config) -> dict:
  """The sweepable hyper-parameters of `config`, as float32 scalars."""
  t = config.train
  values = dict(learning_rate=t.learning_rate, weight_decay=t.weight_decay,
                clip_norm=t.clip_norm, dropout=config.model.dropout)
  return {k: jnp.float32(v) for k, v in values.items()}


def complete_hparams(config, hparams: dict | None = None) -> dict:
  """`hparams` with the sweepable keys it leaves out taken from `config`.

  Args:
    config: the run's config.
    hparams: None, or a dict of some of `default_hparams`' keys to scalars (or, inside
      `jax.vmap`, to one value per member).

  Raises:
    UserError: a key that is not a sweepable hyper-parameter, naming the ones that are.
  """
  values = default_hparams(config)
  unknown = sorted(set(hparams or {}) - set(values))
  if unknown:
    raise errors.UserError(f'hparams {unknown} are not hyper-parameters a member can vary; '
                           f'choose from {sorted(values)}.')
  return {**values, **{k: jnp.asarray(v, jnp.float32) for k, v in (hparams or {}).items()}}


def _adam_with_clip(learning_rate, weight_decay, clip_norm):
  # clip_norm 0 means no clipping; as a traced value it cannot pick a Python branch.
  max_norm = jnp.where(clip_norm > 0, clip_norm, jnp.inf)
  return optax.chain(optax.clip_by_global_norm(max_norm),
                     optax.adamw(learning_rate, eps=ADAM_EPS, weight_decay=weight_decay))


def lr_factor(config, steps_per_epoch: int) -> optax.Schedule | None:
  """The learning-rate schedule of `config` as a factor of train.learning_rate per step.

  None for 'constant'. 'cosine' rises linearly from 0 over `train.warmup_epochs` and decays
  along a cosine to 0 at the last step of `train.epochs`. `steps_per_epoch`: the optimizer
  steps an epoch takes (`rnnjax.train_data.epoch_steps`).
  """
  t = config.train
  if t.lr_schedule == 'constant':
    return None
  total = t.epochs * steps_per_epoch
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=1.0, warmup_steps=t.warmup_epochs * steps_per_epoch,
      decay_steps=total, end_value=0.0)


def make_optimizer(hparams: dict, skip_nonfinite: bool = False,
                   schedule: optax.Schedule | None = None) -> optax.GradientTransformation:
  """AdamW (Adam at weight_decay 0) after a global-norm clip, hyper-parameters in its state.

  `optax.inject_hyperparams` keeps learning rate, weight decay and clip norm in the optimizer
  state, so each member of a vmapped run carries its own values through the same program.
  `optax.flatten` runs the update on one vector of all parameters instead of one small array per
  layer: the same arithmetic in fewer ops, which compile faster (docs/benchmarks.md).
  A `schedule` (see `lr_factor`) scales each update, weight decay included, by its factor at
  that step, so the effective learning rate is learning_rate * schedule(step).
  """
  tx = optax.inject_hyperparams(_adam_with_clip)(
      learning_rate=hparams['learning_rate'], weight_decay=hparams['weight_decay'],
      clip_norm=hparams['clip_norm'])
  if schedule is not None:
    tx = optax.chain(tx, optax.scale_by_schedule(schedule))
  tx = optax.flatten(tx)
  if skip_nonfinite:
    tx = optax.apply_if_finite(tx, max_consecutive_errors=5)
  return tx
