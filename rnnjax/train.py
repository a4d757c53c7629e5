"""Training state, loss, the jitted epoch and `make_train(config, data) -> train(key)`.

Everything inside an epoch runs on the device: a minibatch is a vector of window start indices
(from a fresh permutation of every window, or drawn: train.steps_per_epoch), and windows are
gathered from the device-resident scaled series inside the step, so memory stays O(series
length). Epochs are `lax.scan`s over minibatches; a chunk of epochs is a `lax.scan` over
epochs, one compiled call. `rnnjax.training_loop` drives chunks from Python.
The device-resident data and the epoch's window order are `rnnjax.train_data`'s, the forecasts
of windows `rnnjax.prediction`'s, and what training starts from, fitted to the data,
`rnnjax.fitted_init`'s.
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import flax
import jax
import jax.numpy as jnp
import optax

from rnnjax import config_checks
from rnnjax import dataset as dataset_lib
from rnnjax import devices
from rnnjax import fitted_init
from rnnjax import losses
from rnnjax import models
from rnnjax import optimizer as optimizer_lib
from rnnjax import prediction
from rnnjax import seasons
from rnnjax import windows as windows_lib
from rnnjax.optimizer import complete_hparams, default_hparams
from rnnjax.train_data import DeviceData, batch_draws, device_data, epoch_order, epoch_steps

Array = jax.Array
@flax.struct.dataclass
class TrainState:
  """Everything training needs to continue; a checkpoint saves it beside the run's metadata
  (history, config, scalers, members, seconds: `rnnjax.checkpoint`).

  Attributes:
    params: model parameters after the last epoch.
    opt_state: optimizer state; the learning rate, weight decay and clip norm live in it
      (`make_optimizer`), so each member of a vmapped run carries its own.
    key: [2] uint32 base key; epoch e draws from fold_in(key, e).
    epoch: int32 epochs done.
    dropout: float32 dropout rate (a traced value, so members may differ).
    best_params: parameters of the epoch with the lowest val_loss so far.
    best_val_loss: float32, inf before the first epoch (the start's with train.score_start).
    best_epoch: int32 epoch (1-based) of best_params, 0 before the first epoch (the start).
    stopped: bool; once true (early stop or divergence) epochs leave the state unchanged.
    diverged: bool; a non-finite loss was seen. The state holds the last finite epoch.
  """
  params: Any
  opt_state: Any
  key: Array
  epoch: Array
  dropout: Array
  best_params: Any
  best_val_loss: Array
  best_epoch: Array
  stopped: Array
  diverged: Array


class Batch(NamedTuple):
  """One minibatch, gathered from the series by window start.

  x_BWF [B, W, F] input windows; future_BSK [B, S, K] known-future inputs at the target times
  (None when the model reads none); y_BS [B, S] scaled targets; mask_B [B] bool, false for the
  padding that fills the last batch of an epoch (drawn batches, train.steps_per_epoch > 0, are
  full).
  """
  x_BWF: Array
  future_BSK: Array | None
  y_BS: Array
  mask_B: Array


class Trainer(NamedTuple):
  """The pure pieces of a run; `make_trainer` builds them once every shape is known.

  init(key, hparams=None) -> TrainState; hparams: some of `default_hparams`' keys, the rest
    from the config (`complete_hparams`)
  run_epochs(state, device_data, num_epochs) -> (state, history: dict of [E] arrays, E = num_epochs)
  predict(params, series_TF, starts_B) -> [B, S] scaled forecasts ([B, S, Q] or [B, S, 2]
    for a probabilistic head)
  predict_jit, predict_members_jit: `predict` jitted, for one model and for stacked members.
  data_shards: devices each minibatch is split over (`make_trainer`).
  """
  init: Callable
  run_epochs: Callable
  predict: Callable
  predict_jit: Callable
  predict_members_jit: Callable
  model: models.Forecaster
  device_data: DeviceData
  data_shards: int = 1


def train_step(model: models.Forecaster, tx: optax.GradientTransformation,
               loss_terms: Callable, params, opt_state, batch: Batch, key: Array, dropout,
               fixed_highway: bool = False, data_axis: str | None = None, batch_slice=None):
  """One optimizer step on one minibatch, or on this device's part of it.

  Args:
    model: the forecaster.
    tx: its optimizer (`rnnjax.optimizer.make_optimizer`).
    loss_terms: (forecast, y_BS) -> per-window, per-step loss (`rnnjax.losses.for_model`).
    params, opt_state: before the step.
    batch: the minibatch; padding windows count for nothing.
    key: the step's dropout key.
    dropout: dropout rate (may be traced).
    fixed_highway: leave the 'highway' parameters as they are (model.highway_fixed).
    data_axis: the mesh axis of the devices that share the minibatch (data parallelism), or
      None. Each device holds its part of it (`batch_slice`: (offset, global batch size)); the
      loss is the mean over the whole minibatch's real windows and the gradients are summed
      over the axis, so every device takes the same step.

  Returns:
    (params, opt_state, {'loss', 'grad_norm'}): after the step; the mean loss over the batch's
    real windows before it (NaN for a batch of padding only) and the gradients' global norm
    (before clipping, which acts on the updates).
  """
  count = jnp.sum(batch.mask_B)
  if data_axis is not None:
    count = jax.lax.psum(count, data_axis)

  def loss_fn(p):
    pred = model.apply({'params': p}, batch.x_BWF, batch.future_BSK, train=True,
                       dropout_rate=dropout, rngs={'dropout': key}, batch_slice=batch_slice)
    return losses.masked_sum(loss_terms(pred, batch.y_BS), batch.mask_B) / count

  loss, grads = jax.value_and_grad(loss_fn)(params)
  if data_axis is not None:  # the whole minibatch's mean loss and its gradients
    loss, grads = jax.lax.psum((loss, grads), data_axis)
  grad_norm = optax.tree_utils.tree_norm(grads)
  updates, opt_state = tx.update(grads, opt_state, params)
  if fixed_highway:  # the fitted ridge stays as it is; the network learns the rest
    updates = {**updates, 'highway': jax.tree.map(jnp.zeros_like, updates['highway'])}
  return optax.apply_updates(params, updates), opt_state, {'loss': loss, 'grad_norm': grad_norm}


def end_epoch(state: TrainState, params, opt_state, loss, v_loss, patience: int) -> TrainState:
  """The state after an epoch that trained `state` into (params, opt_state) with mean training
  loss `loss` and validation loss `v_loss`: the best epoch, early stopping and divergence.

  A non-finite loss stops the member and keeps its last good state (diverged set); with
  `patience` > 0, `patience` epochs without a better validation loss stop it. A stopped member
  is left as it is, so a vmapped member stops exactly where a single run of it would.
  """
  finite = jnp.isfinite(loss) & jnp.isfinite(v_loss)
  active = ~state.stopped
  epoch = state.epoch + 1
  improved = active & finite & (v_loss < state.best_val_loss)
  best_epoch = jnp.where(improved, epoch, state.best_epoch)
  stop = ~finite
  if patience:
    stop = stop | (epoch - best_epoch >= patience)
  new = state.replace(
      params=params, opt_state=opt_state, epoch=epoch,
      best_params=_select(improved, params, state.best_params),
      best_val_loss=jnp.where(improved, v_loss, state.best_val_loss), best_epoch=best_epoch,
      stopped=stop, diverged=~finite)
  return _select(active & finite, new, state.replace(stopped=state.stopped | stop,
                                                     diverged=state.diverged | ~finite))


def make_trainer(config, data: dataset_lib.Dataset,
                 capacity: tuple[int, int] | None = None, data_shards: int = 1) -> Trainer:
  """Builds the pure training functions for `config` on `data`; reads the config, never writes it.

  Args:
    config: the run's config.
    data: the dataset; its shapes fix the program's.
    capacity: (training, validation) windows of the longest member when members train on sets
      of different sizes (backtest folds): each member's DeviceData holds that many starts,
      its own count of real ones first. None: exactly data's windows.
    data_shards: devices that share each minibatch and validation batch (data parallelism,
      `rnnjax.devices.DATA_AXIS`); above 1, `run_epochs` must run inside a `shard_map` over
      that axis (`rnnjax.program`). Every device draws the same global batch and trains on its
      own part of it, so the run takes the steps one device would, up to the order of sums.

  Raises:
    UserError: train.batch_size more than data's training windows while batches are drawn
      (`rnnjax.config_checks.check_draws`).
  """
  config = seasons.resolved_config(config, data)  # data.lags and data.season as data read them
  model = models.from_config(
      config,
      None if config.model.head == 'point' else fitted_init.naive_spread(config, data))
  window, steps = data.window, data.steps
  batch_size = config.train.batch_size
  config_checks.check_draws(config, len(data.train_starts))
  drawn = config.train.steps_per_epoch > 0
  sample = config.data.sample
  ragged = capacity is not None
  own_data = device_data(data, *(capacity or (None, None)),
                         val_windows=config.train.val_windows)
  # Capacities: every member's DeviceData holds this many starts (the val ones possibly fewer
  # than the data's: train.val_windows).
  n_train, n_val = len(own_data.train_starts), len(own_data.val_starts)
  num_batches = epoch_steps(n_train, batch_size, config.train.steps_per_epoch)
  val_batch = min(config.train.val_batch_size, n_val)
  val_batch = math.ceil(val_batch / data_shards) * data_shards  # each device an equal part
  data_axis = devices.DATA_AXIS if data_shards > 1 else None

  def my_part(a_B):
    """This device's part of a global batch along axis 0 (all of it on one device)."""
    if data_axis is None:
      return a_B
    size = a_B.shape[0] // data_shards
    return jax.lax.dynamic_slice_in_dim(a_B, jax.lax.axis_index(data_axis) * size, size)
  patience = config.train.early_stopping_patience
  skip_nonfinite = config.train.skip_nonfinite_updates
  schedule = optimizer_lib.lr_factor(config, num_batches)
  tx = optimizer_lib.make_optimizer(default_hparams(config), skip_nonfinite, schedule)
  loss_terms = losses.for_model(config.model)
  num_known = model.num_known  # the known lags, future features and calendar ending scaled_TF
  score_start = bool(config.train.score_start)
  fixed_highway = bool(config.model.highway_fixed)
  ridge = None
  if config.model.highway_init == 'ridge':
    ridge = fitted_init.ridge_highway(model, data)

  def init(key: Array, hparams: dict | None = None) -> TrainState:
    hparams = complete_hparams(config, hparams)
    init_key, train_key = jax.random.split(key)
    x = jnp.zeros((1, window, data.num_features), jnp.float32)
    future = jnp.zeros((1, len(steps), num_known), jnp.float32) if num_known else None
    params = model.init(init_key, x, future)['params']
    if ridge is not None:  # the linear forecast at the start, the network's head silent
      params = {**params, 'highway': ridge,
                'head': jax.tree.map(jnp.zeros_like, params['head'])}
    return TrainState(
        params=params, opt_state=optimizer_lib.make_optimizer(hparams, skip_nonfinite, schedule).init(params),
        key=train_key, epoch=jnp.int32(0), dropout=hparams['dropout'], best_params=params,
        best_val_loss=jnp.float32(jnp.inf), best_epoch=jnp.int32(0),
        stopped=jnp.bool_(False), diverged=jnp.bool_(False))

  predict = prediction.window_predictor(model, window, steps, num_known)

  def val_loss(params, dd: DeviceData) -> Array:
    num_val_batches = math.ceil(n_val / val_batch)
    pad = num_val_batches * val_batch - n_val
    starts = jnp.concatenate([dd.val_starts, jnp.zeros(pad, jnp.int32)])
    mask = jnp.arange(num_val_batches * val_batch) < dd.num_val
    batches = (starts.reshape(num_val_batches, val_batch), mask.reshape(num_val_batches, val_batch))

    def body(total, batch):
      starts_b, mask_b = map(my_part, batch)
      _, y = windows_lib.gather_windows(dd.series_TF, starts_b, window, steps)
      pred = predict(params, dd.series_TF, starts_b)
      return total + losses.masked_sum(loss_terms(pred, y), mask_b), None

    total, _ = jax.lax.scan(body, jnp.float32(0.0), batches)
    if data_axis is not None:
      total = jax.lax.psum(total, data_axis)
    return total / dd.num_val

  def minibatches(perm_key: Array, dd: DeviceData) -> Callable:
    """`batch(s) -> (idx_B, mask_B)`: the indices into dd.train_starts of the epoch's step s's
    global batch [B] and its mask [B] (false for padding)."""
    if drawn:
      positions_B = jnp.arange(batch_size, dtype=jnp.int32)
      return lambda s: batch_draws(perm_key, s, positions_B, dd, sample)
    # Keras semantics: every window every epoch; the ragged last batch is padded and masked.
    order = epoch_order(perm_key, n_train, dd.num_train)
    order = jnp.concatenate([order, jnp.zeros(num_batches * batch_size - n_train, order.dtype)])

    def batch(s):
      first = s * batch_size
      return (jax.lax.dynamic_slice(order, (first,), (batch_size,)),
              first + jnp.arange(batch_size) < dd.num_train)
    return batch

  def train_epoch(state: TrainState, dd: DeviceData) -> tuple[TrainState, dict]:
    perm_key, dropout_key = jax.random.split(jax.random.fold_in(state.key, state.epoch))
    batch = minibatches(perm_key, dd)
    steps_and_keys = (jnp.arange(num_batches, dtype=jnp.int32),
                      jax.random.split(dropout_key, num_batches))

    def step(carry, step_and_key):
      params, opt_state = carry
      s, key = step_and_key
      idx_B, mask_B = batch(s)  # the global batch; this device trains on its part
      starts_b = dd.train_starts[my_part(idx_B)]
      x_bWF, y_bS = windows_lib.gather_windows(dd.series_TF, starts_b, window, steps)
      future_bSK = windows_lib.gather_future(dd.series_TF, starts_b, window, steps, num_known)
      part = None
      if data_axis is not None:
        part = (jax.lax.axis_index(data_axis) * (batch_size // data_shards), batch_size)
      params, opt_state, out = train_step(
          model, tx, loss_terms, params, opt_state,
          Batch(x_bWF, future_bSK, y_bS, my_part(mask_B)), key, state.dropout, fixed_highway,
          data_axis, part)
      loss, grad_norm = out['loss'], out['grad_norm']
      count = jnp.sum(mask_B)
      if skip_nonfinite:  # skipped batches are left out of the epoch's loss as well
        count = jnp.where(jnp.isfinite(loss), count, 0.0)
        loss = jnp.where(jnp.isfinite(loss), loss, 0.0)
      new = (params, opt_state)
      if ragged:  # a batch of padding only (a shorter member's) leaves the optimizer as it was
        new = _select(jnp.any(mask_B), new, carry)
      return new, (jnp.where(count > 0, loss * count, 0.0), count,
                   jnp.where(count > 0, grad_norm * count, 0.0))

    (params, opt_state), weighted = jax.lax.scan(step, (state.params, state.opt_state),
                                                 steps_and_keys)
    # Mean over windows, as Keras reports it (over the windows of applied steps when
    # non-finite steps are skipped; no applied step at all gives NaN and stops the run).
    loss = jnp.sum(weighted[0]) / jnp.sum(weighted[1])
    grad_norm = jnp.sum(weighted[2]) / jnp.sum(weighted[1])  # weighted as the loss
    v_loss = val_loss(params, dd)
    active = ~state.stopped
    state = end_epoch(state, params, opt_state, loss, v_loss, patience)
    return state, {'loss': loss, 'val_loss': v_loss, 'active': active, 'grad_norm': grad_norm}

  def scored_start(state: TrainState, dd: DeviceData) -> TrainState:
    # Before the first epoch, the starting parameters become the best so far (epoch 0), so an
    # epoch must beat them on validation to be kept. Later chunks leave the state as it is.
    v_loss = val_loss(state.params, dd)
    first = (state.epoch == 0) & jnp.isfinite(v_loss) & ~state.stopped
    return state.replace(best_val_loss=jnp.where(first, v_loss, state.best_val_loss))

  def run_epochs(state: TrainState, dd: DeviceData, num_epochs: int):
    if score_start:
      state = scored_start(state, dd)
    return jax.lax.scan(lambda s, _: train_epoch(s, dd), state, None, length=num_epochs)

  return Trainer(init=init, run_epochs=run_epochs, predict=predict,
                 predict_jit=jax.jit(predict),
                 predict_members_jit=jax.jit(jax.vmap(predict, in_axes=(0, None, None))),
                 model=model, device_data=own_data, data_shards=data_shards)


def _select(pred, on_true, on_false):
  return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def final_params(state: TrainState, early_stopping: bool):
  """The parameters a run reports: the best epoch's with early stopping, else the last epoch's."""
  return state.best_params if early_stopping else state.params


def make_train(config, data: dataset_lib.Dataset) -> Callable:
  """Returns `train(key, hparams=None) -> (TrainState, history)`, a pure function.

  One model: `jax.jit(train)(jax.random.PRNGKey(0))`. Many at once, same code:
  `jax.jit(jax.vmap(train))(keys)`. history holds [epochs] arrays 'loss' and 'val_loss'
  (the head's loss in scaled units, `rnnjax.losses`: for the point head the MSE, as Keras'
  History), 'grad_norm' (the mean over the epoch's steps of the gradients' global norm before
  clipping) and 'active' (false after an early stop). hparams: some of `default_hparams`' keys
  (one value each, or [M] under vmap); the rest come from the config.
  """
  trainer = make_trainer(config, data)
  epochs = config.train.epochs

  def train(key: Array, hparams: dict | None = None):
    state = trainer.init(key, hparams)
    return trainer.run_epochs(state, trainer.device_data, epochs)

  return train
