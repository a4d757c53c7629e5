"""Forecast distributions as NumPy arrays: quantile CDFs, normals, and mixtures of members.

A quantile forecast [..., Q] at increasing levels tau_1 < ... < tau_Q stands for the
distribution whose CDF runs linearly from quantile to quantile and, past the outer two, on with
the slope of the nearest segment until it reaches 0 and 1 (`quantile_knots`); a gaussian
forecast [..., 2] is a normal with that (mean, scale). An ensemble's forecast is the
equal-weight mixture of its members' distributions: its quantiles invert the mixture's CDF
(`quantiles_at`), exactly for quantile members (the mixture of piecewise-linear CDFs is
piecewise linear between the pooled knots) and by bisection for normal members.

Members lead: every function here takes [M, ...] forecasts; a single model is M = 1.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import special

# Bisection steps for the quantiles of a normal mixture: the bracket of 20 scales shrinks to
# 20 * 2^-60 of a scale, below float64 resolution of the values.
_BISECTION_STEPS = 60


def _levels(levels: Sequence[float]) -> np.ndarray:
  tau = np.asarray(levels, np.float64).reshape(-1)
  if tau.size == 0 or np.any((tau <= 0) | (tau >= 1)):
    raise ValueError(f'quantile levels must lie strictly between 0 and 1, got {tau.tolist()}')
  return tau


def quantile_knots(q_Q, levels: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
  """The piecewise-linear CDF a quantile forecast stands for, as knots.

  Between two quantiles the CDF is linear; below the first quantile it falls to 0 with the
  slope of the first segment, above the last it rises to 1 with the slope of the last one, so
  the distribution has bounded support [x_0, x_{Q+1}].

  Args:
    q_Q: [..., Q] quantiles, non-decreasing along the last axis, Q >= 2.
    levels: the Q increasing levels.

  Returns:
    (x [..., Q + 2] knot positions, p [Q + 2] CDF values at the knots: 0, levels..., 1).
  """
  q = np.asarray(q_Q, np.float64)
  tau = _levels(levels)
  if q.shape[-1:] != tau.shape or tau.size < 2:
    raise ValueError(f'quantiles of shape {q.shape} at {tau.size} levels {tau.tolist()}: the last '
                     'axis must hold one quantile per level, and at least 2')
  if np.any(np.diff(tau) <= 0):
    raise ValueError(f'quantile levels must be strictly increasing, got {tau.tolist()}')
  low = q[..., :1] - tau[0] * (q[..., 1:2] - q[..., :1]) / (tau[1] - tau[0])
  high = q[..., -1:] + (1 - tau[-1]) * (q[..., -1:] - q[..., -2:-1]) / (tau[-1] - tau[-2])
  return np.concatenate([low, q, high], axis=-1), np.concatenate([[0.0], tau, [1.0]])


def knots_cdf(z_L, x_J, p_J, left: bool = False) -> np.ndarray:
  """The piecewise-linear CDF with knots (x_J, p_J) at the points z_L.

  Args:
    z_L: [..., L] points.
    x_J: [..., J] non-decreasing knot positions (same leading axes as z_L).
    p_J: [J] CDF values at the knots, from 0 to 1.
    left: the left limit F(z-) instead of F(z) (they differ where two knots coincide: a jump).

  Returns:
    [..., L] CDF values.
  """
  z = np.asarray(z_L, np.float64)[..., :, None]
  lo, hi = x_J[..., None, :-1], x_J[..., None, 1:]
  width = hi - lo
  ramp = np.clip((z - lo) / np.where(width > 0, width, 1.0), 0.0, 1.0)
  step = (z > lo) if left else (z >= lo)
  return np.sum(np.diff(p_J) * np.where(width > 0, ramp, step), axis=-1)


def quantile_cdf(z_L, q_Q, levels: Sequence[float]) -> np.ndarray:
  """[..., L] CDF at the points z_L [..., L] of the quantile forecast q_Q [..., Q] (see
  `quantile_knots`)."""
  x, p = quantile_knots(q_Q, levels)
  return knots_cdf(z_L, x, p)


def gaussian_quantiles(mean, scale, levels: Sequence[float]) -> np.ndarray:
  """[..., L] quantiles of normals with `mean` and `scale` [...] at the L `levels`."""
  z = special.ndtri(_levels(levels))
  return np.asarray(mean, np.float64)[..., None] + np.asarray(scale, np.float64)[..., None] * z


def _mixed_quantile_quantiles(q_MQ, levels, out_levels) -> np.ndarray:
  """[..., L] quantiles of the equal-weight mixture of the quantile forecasts q_MQ [M, ..., Q].

  The mixture's CDF is linear between consecutive pooled knots of its members (and jumps only
  at knots), so a binary search over the sorted pooled knots finds the segment each level falls
  in, and a linear interpolation inside it is exact.
  """
  x, p = quantile_knots(q_MQ, levels)                       # [M, ..., J]
  members = x.shape[0]
  pooled = np.sort(np.moveaxis(x, 0, -2).reshape(x.shape[1:-1] + (-1,)), axis=-1)  # [..., P]
  tau = _levels(out_levels)
  shape = pooled.shape[:-1] + tau.shape

  def cdf(z, left=False):
    return sum(knots_cdf(z, x[m], p, left) for m in range(members)) / members

  def at(index):
    return np.take_along_axis(pooled, index, axis=-1)

  lo = np.zeros(shape, np.int64)
  hi = np.full(shape, pooled.shape[-1] - 1, np.int64)
  # Invariant: F(pooled[lo]) < tau <= F(pooled[hi]) (F reaches 1 at the last knot).
  while np.any(hi - lo > 1):
    mid = (lo + hi) // 2
    below = cdf(at(mid)) < tau
    lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
  x_lo, x_hi = at(lo), at(hi)
  f_lo, f_hi_left = cdf(x_lo), cdf(x_hi, left=True)
  inside = tau < f_hi_left
  fraction = (tau - f_lo) / np.where(inside, f_hi_left - f_lo, 1.0)
  out = np.where(inside, x_lo + fraction * (x_hi - x_lo), x_hi)
  # A jump at the lowest knot can already hold the level.
  return np.where(cdf(pooled[..., :1]) >= tau, pooled[..., :1], out)


def gaussian_mixture_cdf(z_L, mean_M, scale_M) -> np.ndarray:
  """[..., L] CDF at z_L [..., L] of the equal-weight mixture of normals mean_M, scale_M
  [M, ...]."""
  mean = np.asarray(mean_M, np.float64)[..., None]
  scale = np.asarray(scale_M, np.float64)[..., None]
  return np.mean(special.ndtr((np.asarray(z_L, np.float64)[None] - mean) / scale), axis=0)


def gaussian_mixture_quantiles(mean_M, scale_M, levels: Sequence[float]) -> np.ndarray:
  """[..., L] quantiles of the equal-weight mixture of normals mean_M, scale_M [M, ...].

  One member: the normal's own quantiles. Several: bisection on the mixture's CDF, started
  from a bracket 10 scales beyond every member's mean, vectorised over every window and step.
  """
  mean, scale = np.asarray(mean_M, np.float64), np.asarray(scale_M, np.float64)
  tau = _levels(levels)
  if mean.shape[0] == 1:
    return gaussian_quantiles(mean[0], scale[0], tau)
  shape = mean.shape[1:] + tau.shape
  lo = np.broadcast_to(np.min(mean - 10 * scale, axis=0)[..., None], shape)
  hi = np.broadcast_to(np.max(mean + 10 * scale, axis=0)[..., None], shape)
  for _ in range(_BISECTION_STEPS):
    mid = 0.5 * (lo + hi)
    below = gaussian_mixture_cdf(mid, mean, scale) < tau
    lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
  return 0.5 * (lo + hi)


def gaussian_mixture_moments(mean_M, scale_M) -> tuple[np.ndarray, np.ndarray]:
  """(mean [...], standard deviation [...]) of the equal-weight mixture of normals [M, ...]."""
  mean, scale = np.asarray(mean_M, np.float64), np.asarray(scale_M, np.float64)
  mixed = mean.mean(axis=0)
  # Within-member plus between-member variance: no cancellation when the means are large.
  return mixed, np.sqrt(np.mean(scale ** 2, axis=0) + np.mean((mean - mixed) ** 2, axis=0))


def quantiles_at(forecast_M, head: str, quantiles: Sequence[float],
                 levels: Sequence[float]) -> np.ndarray:
  """Quantiles at `levels` of the equal-weight mixture of members' forecasts.

  Args:
    forecast_M: [M, ..., Q] quantile forecasts at `quantiles` (head 'quantile'), or
      [M, ..., 2] (mean, scale) (head 'gaussian').
    head: 'quantile' or 'gaussian'.
    quantiles: the quantile head's Q levels (unused for 'gaussian').
    levels: the L levels wanted.

  Returns:
    [..., L]. A single quantile member asked for its own levels (within 1e-6) returns them
    unchanged; anything else interpolates its CDF (`quantile_knots`).
  """
  f = np.asarray(forecast_M, np.float64)
  tau = _levels(levels)
  if head == 'gaussian':
    if f.shape[-1:] != (2,):
      raise ValueError(f'gaussian forecasts of shape {f.shape}: the last axis must be (mean, '
                       'scale), size 2')
    return gaussian_mixture_quantiles(f[..., 0], f[..., 1], tau)
  if head != 'quantile':
    raise ValueError(f'quantiles_at needs a probabilistic head, got {head!r}')
  own = np.asarray(quantiles, np.float64)
  if f.shape[0] == 1:
    near = np.abs(tau[:, None] - own[None, :]) <= 1e-6
    if near.any(axis=1).all():
      return f[0][..., np.argmax(near, axis=1)]
  return _mixed_quantile_quantiles(f, own, tau)


def middle_index(quantiles: Sequence[float]) -> int:
  """Index of the level nearest 0.5 (the median when 0.5 is listed); the first of a tie."""
  return min(range(len(quantiles)), key=lambda i: abs(quantiles[i] - 0.5))


def center(forecast_M, head: str, quantiles: Sequence[float] = ()) -> np.ndarray:
  """The point forecast [...] of members' forecasts [M, ...(, Q or 2)], for point errors.

  point: the members' mean; quantile: the mixture's quantile at the level nearest 0.5 (its
  median when 0.5 is listed); gaussian: the mixture's mean (the mean of the members' means).
  """
  f = np.asarray(forecast_M, np.float64)
  if head == 'point':
    return f.mean(axis=0)
  if head == 'gaussian':
    return f[..., 0].mean(axis=0)
  return quantiles_at(f, head, quantiles, [quantiles[middle_index(quantiles)]])[..., 0]
