"""The training loss, in one place: what training minimises and validation reports.

A forecast head's loss is a per-window term (the mean over the window's target steps); training
averages it over a minibatch's real windows (the padding of the ragged last batch is masked
out), validation over every validation window. The point head's term is the squared error, so
both losses are the scaled MSE that Keras' `History` reports for the tutorial; the quantile
head's is the pinball loss, the gaussian head's the negative log-likelihood, all in scaled units.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp

# What history.csv's loss and val_loss are, per head (loss.png's axis).
NAMES = {'point': 'MSE (scaled)', 'quantile': 'Pinball loss (scaled)',
         'gaussian': 'Gaussian NLL (scaled)'}
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def squared_error(pred_BS: jax.Array, y_BS: jax.Array) -> jax.Array:
  """[B] squared errors of point forecasts `pred_BS` [B, S] against targets `y_BS` [B, S],
  averaged over the S steps."""
  return jnp.mean((pred_BS - y_BS) ** 2, axis=-1)


def pinball(pred_BSQ: jax.Array, y_BS: jax.Array, quantiles: Sequence[float]) -> jax.Array:
  """[B] pinball (quantile) losses, averaged over the Q levels and the S steps.

  For level tau and forecast q of target y: tau * (y - q) when y >= q, else (1 - tau) * (q - y).
  Its expectation is smallest when q is the tau-quantile of y's distribution.

  Args:
    pred_BSQ: [B, S, Q] forecast quantiles.
    y_BS: [B, S] targets.
    quantiles: the Q levels, in the order of the last axis.
  """
  tau_11Q = jnp.asarray(quantiles, pred_BSQ.dtype).reshape(1, 1, -1)
  error_BSQ = y_BS[..., None] - pred_BSQ
  return jnp.mean(jnp.maximum(tau_11Q * error_BSQ, (tau_11Q - 1.0) * error_BSQ), axis=(-2, -1))


def gaussian_nll(pred_BS2: jax.Array, y_BS: jax.Array) -> jax.Array:
  """[B] negative log-likelihoods of the targets under normal forecasts, averaged over steps.

  Per step: log(scale) + 0.5 * ((y - mean) / scale)^2 + 0.5 * log(2 pi).

  Args:
    pred_BS2: [B, S, 2] (mean, scale), scale > 0.
    y_BS: [B, S] targets.
  """
  mean_BS, scale_BS = pred_BS2[..., 0], pred_BS2[..., 1]
  z_BS = (y_BS - mean_BS) / scale_BS
  return jnp.mean(jnp.log(scale_BS) + 0.5 * z_BS * z_BS + _HALF_LOG_2PI, axis=-1)


def for_model(model_config) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """The per-window loss term of the model's forecasts: (pred, y_BS) -> [B].

  pred is what `rnnjax.models.Forecaster` returns for `model_config.head`: [B, S] (point),
  [B, S, Q] (quantile) or [B, S, 2] (gaussian).
  """
  head = model_config.head
  if head == 'point':
    return squared_error
  if head == 'quantile':
    levels = tuple(float(q) for q in model_config.quantiles)
    return lambda pred_BSQ, y_BS: pinball(pred_BSQ, y_BS, levels)
  if head == 'gaussian':
    return gaussian_nll
  raise ValueError(f'unknown model.head {head!r}; choose one of {tuple(NAMES)}')


def masked_sum(terms_B: jax.Array, mask_B: jax.Array) -> jax.Array:
  """Sum of the per-window terms [B] where `mask_B` [B] is true (padding windows are false)."""
  return jnp.sum(jnp.where(mask_B, terms_B, 0.0))
