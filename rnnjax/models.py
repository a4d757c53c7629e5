"""Recurrent cells and the stacked forecaster built from `flax.linen.RNN` layers.

Two implementations of each cell give the same function:
  'flax'  - flax's stock `GRUCell`, `LSTMCell`, `SimpleCell` inside `nn.RNN`.
  'fused' - the input projection of every time step is one matrix product before the scan;
            the scanned cell (`GRURecurrence`, ...) only does the recurrent product. The cells
            keep `nn.RNN`'s carry/call contract, their inputs being the projected sequence.
Kernels start as in Keras (Glorot-uniform inputs, orthogonal recurrence, zero biases; LSTM
forget bias 1 for the fused cell), so runs compare with the tutorial's.
"""
from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATION_FNS: dict[str, Callable] = {
    'tanh': jnp.tanh, 'swish': nn.swish, 'silu': nn.silu, 'relu': nn.relu, 'gelu': nn.gelu,
    'sigmoid': nn.sigmoid, 'elu': nn.elu, 'softplus': nn.softplus, 'linear': lambda x: x,
}
GATES = {'gru': 3, 'lstm': 4, 'simple': 1}
KERNEL_INIT = nn.initializers.glorot_uniform()
RECURRENT_INIT = nn.initializers.orthogonal()


def activation_fn(name: str) -> Callable:
  if name not in ACTIVATION_FNS:
    raise ValueError(f'unknown activation {name!r}; choose one of {sorted(ACTIVATION_FNS)}')
  return ACTIVATION_FNS[name]


def stock_cell(cell: str, features: int, activation: str) -> nn.RNNCellBase:
  """flax's own cell for `cell` ('gru', 'lstm', 'simple'), candidate activation `activation`."""
  act = activation_fn(activation)
  common = dict(features=features, activation_fn=act, kernel_init=KERNEL_INIT,
                recurrent_kernel_init=RECURRENT_INIT)
  if cell == 'gru':
    return nn.GRUCell(**common)
  if cell == 'lstm':
    return nn.OptimizedLSTMCell(**common)
  if cell == 'simple':
    return nn.SimpleCell(**common)
  raise ValueError(f'unknown cell {cell!r}; choose one of {sorted(GATES)}')


class _Recurrence(nn.RNNCellBase):
  """Base of the fused cells: inputs are already projected, [..., gates * features]."""
  features: int
  activation: str = 'tanh'

  @nn.nowrap
  def initialize_carry(self, rng, input_shape):
    return jnp.zeros(input_shape[:-1] + (self.features,), jnp.float32)

  @property
  def num_feature_axes(self) -> int:
    return 1

  def _recurrent(self, h_BH, gates: int):
    kernel = self.param('recurrent_kernel', RECURRENT_INIT, (self.features, gates * self.features))
    return h_BH @ kernel


class GRURecurrence(_Recurrence):
  """GRU step on projected inputs xp = x @ W_i + b_i, laid out [r | z | n] (flax's GRUCell math).

  r = sigmoid(xp_r + h W_hr), z = sigmoid(xp_z + h W_hz),
  n = act(xp_n + r * (h W_hn + b_hn)), h' = (1 - z) * n + z * h.
  """

  @nn.compact
  def __call__(self, h_BH, xp_BG):
    hp = self._recurrent(h_BH, 3)
    b_hn = self.param('recurrent_bias', nn.initializers.zeros_init(), (self.features,))
    xr, xz, xn = jnp.split(xp_BG, 3, axis=-1)
    hr, hz, hn = jnp.split(hp, 3, axis=-1)
    r = nn.sigmoid(xr + hr)
    z = nn.sigmoid(xz + hz)
    b_hn = jnp.reshape(b_hn, (1,) * (hn.ndim - 1) + b_hn.shape)  # explicit: rank promotion off
    n = activation_fn(self.activation)(xn + r * (hn + b_hn))
    h = (1.0 - z) * n + z * h_BH
    return h, h


class LSTMRecurrence(_Recurrence):
  """LSTM step on projected inputs laid out [i | f | g | o] (flax's LSTMCell math).

  c' = f * c + i * g with g = act(.), h' = o * act(c'); the carry is (c, h) as in flax.
  """

  @nn.nowrap
  def initialize_carry(self, rng, input_shape):
    zeros = jnp.zeros(input_shape[:-1] + (self.features,), jnp.float32)
    return zeros, zeros

  @nn.compact
  def __call__(self, carry, xp_BG):
    c, h = carry
    gates = xp_BG + self._recurrent(h, 4)
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    act = activation_fn(self.activation)
    c = nn.sigmoid(f) * c + nn.sigmoid(i) * act(g)
    h = nn.sigmoid(o) * act(c)
    return (c, h), h


class SimpleRecurrence(_Recurrence):
  """Elman step on projected inputs: h' = act(xp + h W_h)."""

  @nn.compact
  def __call__(self, h_BH, xp_BH):
    h = activation_fn(self.activation)(xp_BH + self._recurrent(h_BH, 1))
    return h, h


RECURRENCES = {'gru': GRURecurrence, 'lstm': LSTMRecurrence, 'simple': SimpleRecurrence}


def _input_bias_init(cell: str, features: int):
  """Zero biases, except the LSTM forget gate at 1 (Keras' unit_forget_bias)."""
  if cell != 'lstm':
    return nn.initializers.zeros_init()

  def init(key, shape, dtype=jnp.float32):
    return jnp.zeros(shape, dtype).at[features:2 * features].set(1.0)
  return init


class FusedRNN(nn.Module):
  """One recurrent layer: the input projection of all steps at once, then `nn.RNN` over the rest.

  Maps x [B, T, F] to hidden states [B, T, features].
  """
  cell: str
  features: int
  activation: str = 'tanh'
  unroll: int = 1

  @nn.compact
  def __call__(self, x_BTF):
    gates = GATES[self.cell]
    xp_BTG = nn.Dense(gates * self.features, kernel_init=KERNEL_INIT,
                      bias_init=_input_bias_init(self.cell, self.features), name='input')(x_BTF)
    recurrence = RECURRENCES[self.cell](self.features, self.activation, name='recurrence')
    return nn.RNN(recurrence, unroll=self.unroll)(xp_BTG)


def dropout(x, rate, key):
  """Inverted dropout whose rate may be a traced value (a per-member sweep).

  flax's nn.Dropout branches on the rate in Python, so it needs a concrete one.
  """
  keep = 1.0 - jnp.asarray(rate, x.dtype)
  mask = jax.random.bernoulli(key, keep, x.shape)
  return jnp.where(mask, x / keep, 0.0)


class Forecaster(nn.Module):
  """Stacked recurrent layers, dropout after each, and a Dense head on the last output.

  Attributes:
    cell: 'gru', 'lstm' or 'simple'.
    hidden_sizes: features of each recurrent layer, bottom first.
    activation: candidate activation of every cell ('tanh', 'swish', ...).
    dropout: rate after each recurrent layer, when `dropout_rate` is not passed.
    implementation: 'fused' or 'flax' (see the module docstring).
    unroll: time steps per scan iteration.
  """
  cell: str = 'gru'
  hidden_sizes: Sequence[int] = (24, 50, 24)
  activation: str = 'swish'
  dropout: float = 0.0
  implementation: str = 'fused'
  unroll: int = 1

  @nn.compact
  def __call__(self, x_BTF, *, train: bool = False, dropout_rate=None):
    """Forecasts one value per window.

    Args:
      x_BTF: [B, T, F] input windows.
      train: apply dropout (needs a 'dropout' rng).
      dropout_rate: overrides `self.dropout`; may be a traced scalar.

    Returns:
      [B] forecasts (scaled units).
    """
    rate = self.dropout if dropout_rate is None else dropout_rate
    use_dropout = train and not (isinstance(rate, (int, float)) and rate == 0.0)
    h = x_BTF
    for i, size in enumerate(self.hidden_sizes):
      if self.implementation == 'fused':
        h = FusedRNN(self.cell, size, self.activation, self.unroll, name=f'rnn_{i}')(h)
      else:
        h = nn.RNN(stock_cell(self.cell, size, self.activation), unroll=self.unroll,
                   name=f'rnn_{i}')(h)
      if i == len(self.hidden_sizes) - 1:
        h = h[:, -1]  # only the last step feeds the head, as Keras' return_sequences=False
      if use_dropout:
        h = dropout(h, rate, self.make_rng('dropout'))
    return nn.Dense(1, kernel_init=KERNEL_INIT, name='head')(h)[:, 0]


def from_config(model_config) -> Forecaster:
  return Forecaster(cell=model_config.cell, hidden_sizes=tuple(model_config.hidden_sizes),
                    activation=model_config.activation, dropout=model_config.dropout,
                    implementation=model_config.implementation)


def count_flops_per_window(cell: str, hidden_sizes: Sequence[int], num_features: int,
                           window: int) -> int:
  """Multiply-add FLOPs (2 per MAC) of one forward pass over one window, from the shapes."""
  flops, fan_in = 0, num_features
  for size in hidden_sizes:
    gates = GATES[cell]
    flops += 2 * window * gates * size * (fan_in + size)
    fan_in = size
  return flops + 2 * fan_in
