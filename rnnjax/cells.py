"""Recurrent cells, in two implementations that compute the same function:
  'flax'  - flax's stock `GRUCell`, `OptimizedLSTMCell`, `SimpleCell`, each in an `nn.RNN`
            (`stock_cell`).
  'fused' - `FusedRNN`: the input projection of every time step is one matrix product before
            the time loop, which then only does the recurrent product, and the backward pass
            forms the recurrent weight gradient after the loop (`rnnjax.recurrence`). Its cell
            math is also available as `Recurrence`, an `nn.RNN`-compatible cell.
Both read the gate arithmetic of each cell ('gru', 'lstm', 'simple') from one definition here.
Kernels start as in Keras (Glorot-uniform inputs, orthogonal recurrence, zero biases; LSTM
forget bias 1 for the fused cell), so runs compare with the tutorial's.
"""
from __future__ import annotations

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from rnnjax import recurrence


ACTIVATION_FNS: dict[str, Callable] = {
    'tanh': jnp.tanh, 'swish': nn.swish, 'silu': nn.silu, 'relu': nn.relu, 'gelu': nn.gelu,
    'sigmoid': nn.sigmoid, 'elu': nn.elu, 'softplus': nn.softplus, 'linear': lambda x: x,
}
GATES = {'gru': 3, 'lstm': 4, 'simple': 1}
KERNEL_INIT = nn.initializers.glorot_uniform()


def _one_member_at_a_time(init: Callable) -> Callable:
  """`init` whose vmap (an ensemble's init) runs it member by member in a loop.

  The orthogonal initializer takes a QR decomposition. Batched over members, jaxlib 0.10.2's
  CPU QR kernel splits the batch over XLA:CPU's thread pool and blocks a pool thread waiting for
  it; with the layers' QRs running at once, every pool thread of a 2-core machine ends up
  waiting and the program hangs. One member at a time never waits on the pool. Kept on every
  supported jax: tests/test_ensemble.py initialises 16 tutorial members on every core, under
  jaxlib 0.10 and 0.12 alike.
  """
  def member_init(key, shape, dtype=jnp.float32):
    return jax.custom_batching.sequential_vmap(lambda k: init(k, shape, dtype))(key)
  return member_init


RECURRENT_INIT = _one_member_at_a_time(nn.initializers.orthogonal())


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


def _gates(xp, count: int) -> tuple:
  """Per-gate inputs [..., H]: a tuple of `count` arrays as given, or split from one
  [..., G] (G = count * H)."""
  return tuple(xp) if isinstance(xp, (tuple, list)) else tuple(jnp.split(xp, count, axis=-1))


def _row(b_H, like_BH):
  """A bias [H] shaped to add to `like_BH` [..., H] (rank promotion is off in tests)."""
  return jnp.reshape(b_H, (1,) * (like_BH.ndim - 1) + b_H.shape)


# The gate arithmetic of each cell, given the per-gate input projections xp (one [B, G] array
# or a tuple of [B, H]) and the recurrent product hp_BG = h_BH @ W_h. The nn.RNN cells below and
# the fused layer's custom-VJP scan both call these, so the two implementations share one
# definition of each cell. Any leading axes may stand in for B.

def gru_gates(h_BH, xp, hp_BG, b_hn_H, act):
  """GRU, gates [r | z | n] as flax's GRUCell: r = sigmoid(xp_r + hp_r),
  z = sigmoid(xp_z + hp_z), n = act(xp_n + r * (hp_n + b_hn)), h' = (1 - z) * n + z * h."""
  xr_BH, xz_BH, xn_BH = _gates(xp, 3)
  hr_BH, hz_BH, hn_BH = jnp.split(hp_BG, 3, axis=-1)
  r_BH = nn.sigmoid(xr_BH + hr_BH)
  z_BH = nn.sigmoid(xz_BH + hz_BH)
  n_BH = act(xn_BH + r_BH * (hn_BH + _row(b_hn_H, hn_BH)))
  return (1.0 - z_BH) * n_BH + z_BH * h_BH


def lstm_gates(carry, xp, hp_BG, _, act):
  """LSTM, gates [i | f | g | o] as flax's LSTMCell; carry (c_BH, h_BH):
  c' = sigmoid(f) * c + sigmoid(i) * act(g), h' = sigmoid(o) * act(c')."""
  c_BH, _ = carry
  i_BH, f_BH, g_BH, o_BH = (x + y for x, y in zip(_gates(xp, 4), jnp.split(hp_BG, 4, axis=-1),
                                                   strict=True))
  c_BH = nn.sigmoid(f_BH) * c_BH + nn.sigmoid(i_BH) * act(g_BH)
  return c_BH, nn.sigmoid(o_BH) * act(c_BH)


def simple_gates(h_BH, xp, hp_BH, _, act):
  """Elman: h' = act(xp + hp) (G = H: one gate)."""
  (xp_BH,) = _gates(xp, 1)
  return act(xp_BH + hp_BH)


GATE_FNS = {'gru': gru_gates, 'lstm': lstm_gates, 'simple': simple_gates}


def carry_output(cell: str) -> Callable:
  """carry -> h, the part of the carry that is the layer's output and feeds W_h."""
  return (lambda carry: carry[1]) if cell == 'lstm' else (lambda carry: carry)


class Recurrence(nn.RNNCellBase):
  """The fused layer's cell as an `nn.RNN` cell: inputs are projected, xp = x @ W_i + b_i.

  Same carry and call contract as flax's cells: (carry, xp [..., G]) -> (carry, h [..., H]),
  with xp one array (as nn.RNN passes it) or a tuple of per-gate [..., H] arrays.
  """
  cell: str
  features: int
  activation: str = 'tanh'

  @nn.nowrap
  def initialize_carry(self, rng, input_shape):
    zeros = jnp.zeros(input_shape[:-1] + (self.features,), jnp.float32)
    return (zeros, zeros) if self.cell == 'lstm' else zeros

  @property
  def num_feature_axes(self) -> int:
    return 1

  @nn.compact
  def __call__(self, carry, xp):
    kernel, bias = RecurrentParams(self.cell, self.features, name='recurrence')()
    hp_BG = carry_output(self.cell)(carry) @ kernel
    carry = GATE_FNS[self.cell](carry, xp, hp_BG, bias, activation_fn(self.activation))
    return carry, carry_output(self.cell)(carry)


class RecurrentParams(nn.Module):
  """The recurrent kernel [H, G] and, for a GRU, the reset-gated bias b_hn [H] (else [0])."""
  cell: str
  features: int

  @nn.compact
  def __call__(self):
    kernel = self.param('recurrent_kernel', RECURRENT_INIT,
                        (self.features, GATES[self.cell] * self.features))
    bias = (self.param('recurrent_bias', nn.initializers.zeros_init(), (self.features,))
            if self.cell == 'gru' else jnp.zeros((0,), jnp.float32))
    return kernel, bias


def _input_bias_init(cell: str, features: int):
  """Zero biases, except the LSTM forget gate at 1 (Keras' unit_forget_bias)."""
  if cell != 'lstm':
    return nn.initializers.zeros_init()

  def init(key, shape, dtype=jnp.float32):
    return jnp.zeros(shape, dtype).at[features:2 * features].set(1.0)
  return init


class FusedRNN(nn.Module):
  """One recurrent layer: the input projection of all steps at once, then the recurrence.

  Maps time-major x_WBF [W, B, F] to hidden states h_WBH [W, B, H] (H = features). The
  projection is split per gate before the scan: XLA:CPU runs a step faster when each gate's
  input is its own scanned array than when the step slices one [B, G] slab. The recurrence is
  `rnnjax.recurrence.scan`, a `lax.scan` whose backward pass forms the recurrent weight
  gradient in one product after the loop (docs/benchmarks.md has the measurements).
  """
  cell: str
  features: int
  activation: str = 'tanh'

  @nn.compact
  def __call__(self, x_WBF):
    gates = GATES[self.cell]
    xp_WBG = nn.Dense(gates * self.features, kernel_init=KERNEL_INIT,
                      bias_init=_input_bias_init(self.cell, self.features), name='input')(x_WBF)
    per_gate = tuple(jnp.split(xp_WBG, gates, axis=-1))
    kernel, bias = RecurrentParams(self.cell, self.features, name='recurrence')()
    step = functools.partial(GATE_FNS[self.cell], act=activation_fn(self.activation))
    carry0 = Recurrence(self.cell, self.features).initialize_carry(
        None, x_WBF.shape[1:-1] + (self.features,))
    _, h_WBH = recurrence.scan(step, carry_output(self.cell), kernel, bias, per_gate, carry0)
    return h_WBH
