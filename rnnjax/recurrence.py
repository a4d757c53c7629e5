"""A recurrent scan whose backward pass takes the weight gradient out of the time loop.

Differentiating `lax.scan` directly accumulates dW_h += h_{t-1}^T dhp_t inside the backward
loop, one small matrix product per step, and saves every gate activation from the forward loop.
`scan` here saves only the carries and the recurrent products hp_t = h_{t-1} W_h, recomputes
the gate arithmetic in the backward loop, and forms dW_h as one [H, T*B] x [T*B, G*H] product
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
    gates: (carry, x_t, hp [B, G*H], bias) -> new carry; elementwise arithmetic only.
    output: carry -> h [B, H], the part of the carry that feeds the recurrent product.
    kernel: [H, G*H] recurrent kernel.
    bias: any pytree of arrays `gates` reads (may be empty).
    xs: pytree of time-major inputs, leaves [T, B, ...] (per-gate input projections).
    carry0: initial carry.

  Returns:
    (final carry, h [T, B, H] = output of every step's carry).
  """
  carry, (carries, _) = _forward(gates, output, kernel, bias, xs, carry0)
  return carry, output(carries)


def _forward(gates, output, kernel, bias, xs, carry0):
  def step(carry, x):
    hp = output(carry) @ kernel
    carry = gates(carry, x, hp, bias)
    return carry, (carry, hp)
  return jax.lax.scan(step, carry0, xs)


def _scan_fwd(gates, output, kernel, bias, xs, carry0):
  carry, (carries, hps) = _forward(gates, output, kernel, bias, xs, carry0)
  return (carry, output(carries)), (kernel, bias, xs, carry0, carries, hps)


def _scan_bwd(gates, output, residuals, cotangents):
  kernel, bias, xs, carry0, carries, hps = residuals
  d_carry_final, d_h = cotangents
  # carries before each step: carry0, then every carry but the last.
  prev = jax.tree.map(lambda c0, cs: jnp.concatenate([c0[None], cs[:-1]]), carry0, carries)

  def step(d_carry, inputs):
    carry, x, hp, dh = inputs
    d_carry = _add_to_output(output, d_carry, dh)
    _, vjp = jax.vjp(lambda c, x_, hp_, b: gates(c, x_, hp_, b), carry, x, hp, bias)
    d_prev, dx, dhp, dbias = vjp(d_carry)
    d_prev = _add_to_output(output, d_prev, dhp @ kernel.T)
    return d_prev, (dx, dhp, dbias)

  d_carry0, (dxs, dhps, dbiases) = jax.lax.scan(
      step, d_carry_final, (prev, xs, hps, d_h), reverse=True)
  h_prev = output(prev)
  d_kernel = jnp.einsum('tbh,tbg->hg', h_prev, dhps)
  d_bias = jax.tree.map(lambda d: jnp.sum(d, axis=0), dbiases)
  return d_kernel, d_bias, dxs, d_carry0


def _add_to_output(output: Callable, d_carry: Any, dh) -> Any:
  """Adds dh to the cotangent of the carry's output part (h), leaving the rest (an LSTM's c)."""
  _, vjp = jax.vjp(output, d_carry)
  return jax.tree.map(jnp.add, d_carry, vjp(dh)[0])


scan.defvjp(_scan_fwd, _scan_bwd)
