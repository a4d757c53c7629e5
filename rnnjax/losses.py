"""The training loss, in one place: what training minimises and validation reports.

A forecast head's loss is a per-window term (the mean over the window's target steps); training
averages it over a minibatch's real windows (the padding of the ragged last batch is masked
out), validation over every validation window. The point head's term is the squared error, so
both losses are the scaled MSE that Keras' `History` reports for the tutorial.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def squared_error(pred_BS: jax.Array, y_BS: jax.Array) -> jax.Array:
  """[B] squared errors of point forecasts `pred_BS` [B, S] against targets `y_BS` [B, S],
  averaged over the S steps."""
  return jnp.mean((pred_BS - y_BS) ** 2, axis=-1)


def for_model(model_config) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """The per-window loss term of the model's forecasts: (pred_BS, y_BS) -> [B]."""
  del model_config  # one head today: point forecasts
  return squared_error


def masked_sum(terms_B: jax.Array, mask_B: jax.Array) -> jax.Array:
  """Sum of the per-window terms [B] where `mask_B` [B] is true (padding windows are false)."""
  return jnp.sum(jnp.where(mask_B, terms_B, 0.0))
