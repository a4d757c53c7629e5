"""Scaled forecasts of windows by a model: the jittable predictor of one batch of window
starts, and the batched forecast of any number of them, for one model or stacked members.

Windows are gathered from the series inside the predictor, as in training (`rnnjax.train`), so
a forecast of every window holds the series once, never the windows.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from rnnjax import models
from rnnjax.windows import gather_future, gather_windows

Array = jax.Array


# Members x windows forecast by one compiled call of stacked members: bounds that program's
# activations (a window's layer outputs for each member) whatever the ensemble's size.
MEMBER_WINDOWS_PER_CALL = 2**15


def window_predictor(model: models.Forecaster, window: int, steps,
                     num_known: int = 0) -> Callable:
  """`predict(params, series_TF [T, F], starts_B [B]) -> [B, S]` scaled forecasts, no dropout
  ([B, S, Q] or [B, S, 2] for a probabilistic head).

  `steps`: the S target steps after the last input (an int horizon, or a sequence). With
  `num_known` known-future columns, series_TF must reach every target time (the forecast of a
  window near the end reads the known inputs at its targets, past the data).
  """
  def predict(params, series_TF: Array, starts_B: Array) -> Array:
    x_BWF, _ = gather_windows(series_TF, starts_B, window, steps)
    future_BSK = gather_future(series_TF, starts_B, window, steps, num_known)
    return model.apply({'params': params}, x_BWF, future_BSK)
  return predict


def predict_windows(trainer, params, series_TF, starts: np.ndarray,
                    batch_size: int = 4096, member_axis: bool = False) -> np.ndarray:
  """Scaled forecasts for every window start, in fixed-size jitted batches.

  Args:
    trainer: from `make_trainer` (or any object with `predict_jit`/`predict_members_jit`).
    params: one model's parameters, or a stack of members' with `member_axis=True`.
    series_TF: [T, F] scaled series.
    starts: [N] window starts.
    batch_size: windows per compiled call; with `member_axis`, at most
      MEMBER_WINDOWS_PER_CALL // M, so that memory does not grow with the members.
    member_axis: params carry a leading member axis of M members; so does the result.

  Returns:
    [N, S] (or [M, N, S]) forecasts, scaled units; a probabilistic head adds its last axis
    ([..., Q] quantiles or [..., 2] mean and scale, see `rnnjax.models.Forecaster`).
  """
  fn = trainer.predict_members_jit if member_axis else trainer.predict_jit
  if member_axis:
    num_members = jax.tree.leaves(params)[0].shape[0]
    batch_size = min(batch_size, max(1, MEMBER_WINDOWS_PER_CALL // num_members))
  series_TF = jnp.asarray(series_TF)  # on the device once, not once per batch
  starts_N = np.asarray(starts, np.int32)
  n = len(starts_N)
  batch = max(1, min(batch_size, n))
  windows = (slice(None),) if member_axis else ()  # the windows' axis of a forecast
  out = None
  # Each batch is written into the output as it comes: memory holds the forecasts once, and one
  # batch of starts (the last padded with start 0 to the batch's size, so one program serves).
  for i in range(0, max(n, 1), batch):
    kept = min(batch, n - i)
    starts_B = np.zeros(batch, np.int32)
    starts_B[:kept] = starts_N[i:i + kept]
    pred = np.asarray(fn(params, series_TF, jnp.asarray(starts_B)))
    if out is None:
      shape = pred.shape[:len(windows)] + (n,) + pred.shape[len(windows) + 1:]
      out = np.empty(shape, pred.dtype)
    out[windows + (slice(i, i + kept),)] = pred[windows + (slice(0, kept),)]
  return out
