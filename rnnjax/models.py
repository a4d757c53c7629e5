"""The stacked forecaster: recurrent layers (`rnnjax.cells`), dropout after each, the
normalisation, skip and highway around them, and the heads (point, quantile, gaussian);
`from_config` builds it from a config.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from scipy import special

from rnnjax import cells
from rnnjax import config as config_lib
from rnnjax import distributions


def dropout(x, rate, key, batch_axis: int = 0, batch_slice=None):
  """Inverted dropout whose rate may be a traced value (a per-member sweep).

  flax's nn.Dropout branches on the rate in Python, so it needs a concrete one.
  batch_slice: None, or (offset, global_batch) when `x` holds windows offset .. offset + B of
  a global batch of `global_batch` split over devices (data parallelism): the mask is drawn for
  the global batch and this part of it kept, so a window's mask is the one a single device
  drawing the whole batch would give it, whatever the device count.
  """
  keep = 1.0 - jnp.asarray(rate, x.dtype)
  if batch_slice is None:
    mask = jax.random.bernoulli(key, keep, x.shape)
  else:
    offset, global_batch = batch_slice
    shape = x.shape[:batch_axis] + (global_batch,) + x.shape[batch_axis + 1:]
    mask = jax.lax.dynamic_slice_in_dim(jax.random.bernoulli(key, keep, shape), offset,
                                        x.shape[batch_axis], batch_axis)
  return jnp.where(mask, x / keep, 0.0)


class Forecaster(nn.Module):
  """Stacked recurrent layers, dropout after each, and a Dense head on the last output.

  The head forecasts `num_steps` values at once from the same final state (direct
  multi-output). Known-future inputs at the target times (`future_BSK`: known lags, future
  features, calendar) join that state before the head; they also run along the window as its
  trailing `num_known` columns. Lagged targets are input columns like any other; the known
  ones are read at the target times as well.

  Three options let the network forecast a correction instead of the value (docs/levers.md
  measures each):
    normalize: 'last' or 'mean' subtracts each window's last value (or mean) from its value
      columns and lags and adds the target's back; 'last_scale' (RevIN) also divides by the
      window's spread and multiplies it back.
    skip_lags: one k per step adds the target input k steps before the window's end (0 is
      persistence, season - step seasonal naive), replacing the normalisation's add-back.
    highway: a Dense map of the last `highway` inputs (LSTNet's linear path): of the target,
      normalised, and the known lags at the target times (highway_columns='target'), or of
      every column as the data gives them and every known-future input ('all': the linear
      baseline's inputs). It starts at zero, or as a ridge fit (`rnnjax.fitted_init`).
  They add to the location, so each means the same under every head:
    'point' [B, S]; 'quantile' [B, S, Q], increasing by construction (a location plus
    softplus gaps); 'gaussian' [B, S, 2], (mean, scale) with scale > SCALE_FLOOR.
  A probabilistic head's spread starts at `initial_scale` (the seasonal-naive errors' spread
  in training; why, in docs/distributions.md).

  Attributes:
    cell: 'gru', 'lstm' or 'simple'.
    hidden_sizes: features of each recurrent layer, bottom first.
    activation: candidate activation of every cell ('tanh', 'swish', ...).
    dropout: rate after each recurrent layer, when `dropout_rate` is not passed.
    implementation: 'fused' or 'flax' (see the module docstring).
    unroll: time steps per scan iteration of the 'flax' implementation (the fused one runs
      its own scan, unroll 1, fastest on CPU in docs/benchmarks.md).
    num_steps: outputs per window, S.
    skip_lags: see above; () is no skip, else one lag per step.
    normalize: 'none', 'last', 'mean' or 'last_scale'; see above.
    num_known: trailing input columns that are known-future inputs (never normalised, but for
      the known lags).
    num_past_lags: lag columns just before the known-future ones (past-only lags).
    num_known_lags: lag columns at the start of the known-future ones (known lags).
    highway: inputs of the linear path (0 is none); see above.
    highway_columns: 'target' or 'all': what the linear path reads; see above.
    head: 'point', 'quantile' or 'gaussian'; see above.
    quantiles: the Q increasing levels of the quantile head.
    initial_scale: the spread a probabilistic head starts with, scaled units; see above.
  """
  cell: str = 'gru'
  hidden_sizes: Sequence[int] = (24, 50, 24)
  activation: str = 'swish'
  dropout: float = 0.0
  implementation: str = 'fused'
  unroll: int = 1
  num_steps: int = 1
  skip_lags: Sequence[int] = ()
  normalize: str = 'none'
  num_known: int = 0
  num_past_lags: int = 0
  num_known_lags: int = 0
  highway: int = 0
  highway_columns: str = 'target'
  head: str = 'point'
  quantiles: Sequence[float] = ()
  initial_scale: float = 0.1

  def _spread_bias_init(self, key, shape, dtype=jnp.float32):
    del key
    bias = spread_bias(self.head, self.quantiles, self.num_steps, self.initial_scale)
    return jnp.asarray(bias, dtype).reshape(shape)

  def normalized(self, x_BWF, future_BSK=None):
    """The inputs as the layers read them, and what is added back to their output.

    Args: as `__call__`.

    Returns:
      (x_BWF, future_BSK) after `normalize`; anchor_BS, what is added to every output ([B, S]
      or [B, 1]; None without skip or normalisation); scale_B1, what the network's output is
      multiplied by (normalize='last_scale'; else None).
    """
    anchor_BS = None
    if self.skip_lags:
      anchor_BS = x_BWF[:, [-1 - lag for lag in self.skip_lags], 0]
    scale_B1 = None
    if self.normalize != 'none':
      n = x_BWF.shape[-1] - self.num_known
      values = x_BWF[..., :n]
      ref_BF = jnp.mean(values, axis=1) if self.normalize == 'mean' else values[:, -1]
      known_BWK = x_BWF[..., n:]
      anchor_B1 = ref_BF[:, :1]
      # Lags move with the target's reference (and 'last_scale' divides them by its spread).
      past_lag_F = np.arange(n) >= n - self.num_past_lags
      known_lag_K = np.arange(self.num_known) < self.num_known_lags
      if self.num_past_lags or self.num_known_lags:
        ref_BF = jnp.where(past_lag_F[None, :], anchor_B1, ref_BF)
        shift_BK = jnp.where(known_lag_K[None, :], anchor_B1, 0.0)
        known_BWK = known_BWK - shift_BK[:, None]
        future_BSK = future_BSK - shift_BK[:, None]
      values = values - ref_BF[:, None]
      if self.normalize == 'last_scale':
        spread_BF = jnp.std(x_BWF[..., :n], axis=1) + NORMALIZE_FLOOR
        scale_B1 = spread_BF[:, :1]
        target_like_F = (np.arange(n) == 0) | past_lag_F
        values = values / jnp.where(target_like_F[None, :], scale_B1, spread_BF)[:, None]
        if self.num_known_lags:
          divide_BK = jnp.where(known_lag_K[None, :], scale_B1, 1.0)
          known_BWK = known_BWK / divide_BK[:, None]
          future_BSK = future_BSK / divide_BK[:, None]
      x_BWF = jnp.concatenate([values, known_BWK], axis=-1)
      anchor_BS = anchor_B1 if anchor_BS is None else anchor_BS
    return x_BWF, future_BSK, anchor_BS, scale_B1

  def highway_design(self, x_BWF, future_BSK=None):
    """(inputs [B, highway + S * known lags], offset [B, S], scale [B, 1]) of the linear path:
    its forecast is offset + scale * (inputs @ kernel + bias); what
    `rnnjax.fitted_init.ridge_highway` fits a ridge regression to for
    model.highway_init='ridge'. With highway_columns='all' the scale is 1 and the inputs are
    [B, highway * F + S * K], see `_highway_inputs`."""
    raw_BWF, raw_BSK = x_BWF, future_BSK
    x_BWF, future_BSK, anchor_BS, scale_B1 = self.normalized(x_BWF, future_BSK)
    batch = x_BWF.shape[0]
    offset_BS = jnp.zeros((batch, self.num_steps)) if anchor_BS is None else jnp.broadcast_to(
        anchor_BS, (batch, self.num_steps))
    if self.highway_columns == 'all':
      return self._highway_inputs(raw_BWF, raw_BSK), offset_BS, jnp.ones((batch, 1))
    scale_B1 = jnp.ones((batch, 1)) if scale_B1 is None else scale_B1
    return self._highway_inputs(x_BWF, future_BSK), offset_BS, scale_B1

  def _highway_inputs(self, x_BWF, future_BSK):
    """[B, highway + S * known lags]: the last `highway` target inputs, then the known lags at
    every target time (the target a season before it, with data.lags), as the layers see them.
    With highway_columns='all', [B, highway * F + S * K]: the last `highway` steps of every
    column, time-major, then every known-future input at every target time."""
    batch = x_BWF.shape[0]
    if self.highway_columns == 'all':
      parts = [x_BWF[:, -self.highway:, :].reshape(batch, -1)]
      if self.num_known:
        parts.append(future_BSK.reshape(batch, -1))
      return jnp.concatenate(parts, axis=-1)
    inputs_BK = x_BWF[:, -self.highway:, 0]
    if not self.num_known_lags:
      return inputs_BK
    lags_BSL = future_BSK[..., :self.num_known_lags]
    return jnp.concatenate([inputs_BK, lags_BSL.reshape(lags_BSL.shape[0], -1)], axis=-1)

  @nn.compact
  def __call__(self, x_BWF, future_BSK=None, *, train: bool = False, dropout_rate=None,
               batch_slice=None):
    """Forecasts `num_steps` values per window.

    Args:
      x_BWF: [B, W, F] input windows; the target is column 0.
      future_BSK: [B, num_steps, num_known] known-future inputs at the target times, or None
        when `num_known` is 0.
      train: apply dropout (needs a 'dropout' rng).
      dropout_rate: overrides `self.dropout`; may be a traced scalar.
      batch_slice: (offset, global batch) when the B windows are part of a batch split over
        devices; dropout then masks them as the whole batch on one device would (`dropout`).

    Returns:
      Forecasts in scaled units: [B, S] (point head), [B, S, Q] quantiles (quantile head) or
      [B, S, 2] mean and scale (gaussian head), S = num_steps.
    """
    rate = self.dropout if dropout_rate is None else dropout_rate
    use_dropout = train and not (isinstance(rate, (int, float)) and rate == 0.0)
    raw_BWF, raw_BSK = x_BWF, future_BSK
    x_BWF, future_BSK, anchor_BS, scale_B1 = self.normalized(x_BWF, future_BSK)
    last = len(self.hidden_sizes) - 1
    if self.implementation == 'fused':  # time-major end to end: one transpose in, none between
      h_WBH = jnp.swapaxes(x_BWF, 0, 1)
      for i, size in enumerate(self.hidden_sizes):
        h_WBH = cells.FusedRNN(self.cell, size, self.activation, name=f'rnn_{i}')(h_WBH)
        if i < last and use_dropout:
          h_WBH = dropout(h_WBH, rate, self.make_rng('dropout'), 1, batch_slice)
      h_BH = h_WBH[-1]  # only the last step feeds the head (Keras' return_sequences=False)
    else:
      h_BWH = x_BWF
      for i, size in enumerate(self.hidden_sizes):
        h_BWH = nn.RNN(cells.stock_cell(self.cell, size, self.activation), unroll=self.unroll,
                       name=f'rnn_{i}')(h_BWH)
        if i < last and use_dropout:
          h_BWH = dropout(h_BWH, rate, self.make_rng('dropout'), 0, batch_slice)
      h_BH = h_BWH[:, -1]
    if use_dropout:
      h_BH = dropout(h_BH, rate, self.make_rng('dropout'), 0, batch_slice)
    h_BI = h_BH
    if self.num_known:
      h_BI = jnp.concatenate([h_BH, future_BSK.reshape(future_BSK.shape[0], -1)], axis=-1)
    out_BS = nn.Dense(self.num_steps, kernel_init=cells.KERNEL_INIT, name='head')(h_BI)
    highway = nn.Dense(self.num_steps, kernel_init=nn.initializers.zeros_init(),
                       name='highway') if self.highway else None
    if highway and self.highway_columns == 'target':
      out_BS = out_BS + highway(self._highway_inputs(x_BWF, future_BSK))
    if scale_B1 is not None:
      out_BS = out_BS * scale_B1
    location_BS = out_BS if anchor_BS is None else out_BS + anchor_BS
    if highway and self.highway_columns == 'all':
      location_BS = location_BS + highway(self._highway_inputs(raw_BWF, raw_BSK))
    if self.head == 'point':
      return location_BS
    if self.head not in config_lib.HEADS:
      raise ValueError(f'unknown head {self.head!r}; choose one of {config_lib.HEADS}')
    if self.head == 'quantile' and len(self.quantiles) < 2:
      raise ValueError(f'the quantile head needs at least 2 levels, got {self.quantiles}')
    # The quantile head's gaps, or the gaussian head's scale: [B, S, count], unconstrained.
    count = len(self.quantiles) - 1 if self.head == 'quantile' else 1
    raw_BI = nn.Dense(self.num_steps * count, kernel_init=nn.initializers.zeros_init(),
                      bias_init=self._spread_bias_init, name='spread')(h_BI)
    raw_BSC = raw_BI.reshape(raw_BI.shape[0], self.num_steps, count)
    if self.head == 'quantile':
      return quantiles_from(location_BS, raw_BSC,
                            distributions.middle_index(self.quantiles))
    scale_BS = nn.softplus(raw_BSC[..., 0]) + SCALE_FLOOR
    return jnp.stack([location_BS, scale_BS], axis=-1)


# normalize='last_scale' divides by a window's standard deviation plus this (scaled units): a
# flat window's forecast stays near its last value instead of dividing by zero.
NORMALIZE_FLOOR = 1e-2

# The gaussian head's smallest scale (scaled units): keeps its log-likelihood finite.
SCALE_FLOOR = 1e-3


def quantiles_from(location_BS, raw_gaps_BSG, middle: int):
  """Increasing quantiles from a location and unconstrained gaps.

  Args:
    location_BS: [B, S] the value of quantile `middle`.
    raw_gaps_BSG: [B, S, Q - 1] unconstrained; softplus makes each gap positive.
    middle: index of the quantile that equals the location.

  Returns:
    [B, S, Q]: q_0 < q_1 < ... < q_{Q-1}, with q_middle = location.
  """
  gaps = nn.softplus(raw_gaps_BSG)
  offsets = jnp.concatenate([jnp.zeros_like(gaps[..., :1]), jnp.cumsum(gaps, axis=-1)], axis=-1)
  return location_BS[..., None] + (offsets - offsets[..., middle:middle + 1])


def _inverse_softplus(y: np.ndarray) -> np.ndarray:
  return y + np.log(-np.expm1(-y))


def spread_bias(head: str, quantiles: Sequence[float], num_steps: int,
                scale: float) -> np.ndarray:
  """[S * count] bias of the 'spread' Dense that gives every step the spread of a normal of
  standard deviation `scale` (scaled units): the gaussian scale itself, or the quantile gaps
  (z(tau_{j+1}) - z(tau_j)) * scale."""
  if head == 'gaussian':
    raw = _inverse_softplus(np.array([max(scale - SCALE_FLOOR, SCALE_FLOOR)]))
  else:
    z = special.ndtri(np.asarray(quantiles, np.float64))
    raw = _inverse_softplus(np.diff(z) * scale)
  return np.tile(raw, num_steps).astype(np.float32)


def from_config(config, initial_scale: float | None = None) -> Forecaster:
  """The forecaster a whole config describes (model section, target steps, skip, known inputs,
  lags). data.lags and data.season must be resolved (`rnnjax.seasons.resolved_config`).

  `initial_scale` only sets where a probabilistic head's spread starts (see Forecaster); a
  model whose parameters are restored needs none.
  """
  m, d = config.model, config.data
  steps = config_lib.target_steps(d)
  past_lags, known_lags = config_lib.split_lags(d.lags, steps)
  return Forecaster(cell=m.cell, hidden_sizes=tuple(m.hidden_sizes), activation=m.activation,
                    dropout=m.dropout, implementation=m.implementation,
                    num_steps=len(steps),
                    skip_lags=config_lib.skip_lags(config), normalize=m.normalize,
                    num_known=len(known_lags) + len(d.future_features) + 2 * len(d.calendar),
                    num_past_lags=len(past_lags), num_known_lags=len(known_lags),
                    highway=m.highway, highway_columns=m.highway_columns,
                    head=m.head, quantiles=tuple(m.quantiles),
                    **({} if initial_scale is None else {'initial_scale': float(initial_scale)}))
