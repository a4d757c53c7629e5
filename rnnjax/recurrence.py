"""A recurrent scan whose backward pass takes the weight gradient out of the time loop.

Differentiating `lax.scan` directly accumulates dW_h += h_{t-1}^T dhp_t inside the backward
loop, one small matrix product per step, and saves every gate activation from the forward loop.
`scan` here saves only the carries and the recurrent products hp_t = h_{t-1} W_h, recomputes
the gate arithmetic in the backward loop, and forms dW_h as one [H, W*B] x [W*B, G] product
after it. On a CPU the per-step cost of a small recurrence is mostly per-op overhead, so fewer
ops per step is what makes it fast (docs/benchmarks.md).
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def scan(gates: Callable, output: Callable, kernel, bias, xs, carry0):
  """Runs h_t = gates(carry_{t-1}, x_t, output(carry_{t-1}) @ kernel, bias) over time.

  Args:
    gates: (carry, x_t, hp_BG, bias) -> new carry; elementwise arithmetic only (G = gates x H).
    output: carry -> h_BH, the part of the carry that feeds the recurrent product.
    kernel: [H, G] recurrent kernel.
    bias: any pytree of arrays `gates` reads (may be empty).
    xs: pytree of time-major inputs, leaves [W, B, ...] (per-gate input projections).
    carry0: initial carry.

  Returns:
    (final carry, h_WBH = output of every step's carry).
  """
  carry, (carries, _) = _forward(gates, output, kernel, bias, xs, carry0)
  return carry, output(carries)


def _forward(gates, output, kernel, bias, xs, carry0):
  def step(carry, x):
    hp_BG = output(carry) @ kernel
    carry = gates(carry, x, hp_BG, bias)
    return carry, (carry, hp_BG)
  return jax.lax.scan(step, carry0, xs)


def _scan_fwd(gates, output, kernel, bias, xs, carry0):
  carry, (carries, hp_WBG) = _forward(gates, output, kernel, bias, xs, carry0)
  return (carry, output(carries)), (kernel, bias, xs, carry0, carries, hp_WBG)


def _scan_bwd(gates, output, residuals, cotangents):
  kernel, bias, xs, carry0, carries, hp_WBG = residuals
  d_carry_final, dh_WBH = cotangents
  # carries before each step: carry0, then every carry but the last.
  prev = jax.tree.map(lambda c0, cs: jnp.concatenate([c0[None], cs[:-1]]), carry0, carries)

  def step(d_carry, inputs):
    carry, x, hp_BG, dh_BH = inputs
    d_carry = _add_to_output(output, d_carry, dh_BH)
    _, vjp = jax.vjp(lambda c, x_, hp_, b: gates(c, x_, hp_, b), carry, x, hp_BG, bias)
    d_prev, dx, dhp_BG, dbias = vjp(d_carry)
    d_prev = _add_to_output(output, d_prev, dhp_BG @ kernel.T)
    return d_prev, (dx, dhp_BG, dbias)

  d_carry0, (dxs, dhp_WBG, dbiases) = jax.lax.scan(
      step, d_carry_final, (prev, xs, hp_WBG, dh_WBH), reverse=True)
  h_prev_WBH = output(prev)
  d_kernel = jnp.einsum('wbh,wbg->hg', h_prev_WBH, dhp_WBG)
  d_bias = jax.tree.map(lambda d: jnp.sum(d, axis=0), dbiases)
  return d_kernel, d_bias, dxs, d_carry0


def _add_to_output(output: Callable, d_carry: Any, dh_BH) -> Any:
  """Adds dh_BH to the cotangent of the carry's output part (h), leaving the rest (an LSTM's
  c)."""
  _, vjp = jax.vjp(output, d_carry)
  return jax.tree.map(jnp.add, d_carry, vjp(dh_BH)[0])


scan.defvjp(_scan_fwd, _scan_bwd)
