"""Scores of distribution forecasts on plain arrays, in the targets' units: central intervals
(coverage, width, interval score), the pinball loss of quantiles, and the CRPS of normals, of
equal-weight mixtures of normals and of quantile forecasts. Lower is better for all but coverage.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import special

from rnnjax import distributions


def _same_shape(name: str, a: np.ndarray, b: np.ndarray) -> None:
  if a.shape != b.shape:  # broadcasting [N] against [N, 1] would score N * N pairs
    raise ValueError(f'{name} of shape {a.shape} scored against targets of shape {b.shape}')


def interval_scores(lower_NS, upper_NS, y_NS, level: float) -> dict:
  """Scores of central intervals [lower, upper] with nominal level `level`, means over all.

  Args:
    lower_NS, upper_NS: [N, S] (any shape, the same) interval bounds.
    y_NS: targets of the same shape.
    level: the nominal level, e.g. 0.8 for the interval between the 0.1 and 0.9 quantiles.

  Returns:
    {'coverage': fraction of targets with lower <= y <= upper (ideally `level`),
     'width': mean of upper - lower,
     'interval_score': mean of width + (2 / alpha) * (how far y falls outside the interval),
       alpha = 1 - level (Gneiting and Raftery 2007): lower is better, it rewards narrow
       intervals and charges for every miss.}
  """
  lower, upper, y = (np.asarray(a, np.float64) for a in (lower_NS, upper_NS, y_NS))
  _same_shape('interval bounds', lower, y)
  _same_shape('interval bounds', upper, y)
  if not 0.0 < level < 1.0:
    raise ValueError(f'interval level must lie strictly between 0 and 1, got {level}')
  alpha = 1.0 - level
  miss = np.maximum(lower - y, 0.0) + np.maximum(y - upper, 0.0)
  return {'coverage': float(np.mean((lower <= y) & (y <= upper))),
          'width': float(np.mean(upper - lower)),
          'interval_score': float(np.mean(upper - lower + 2.0 / alpha * miss))}


def pinball(q_NSQ, y_NS, quantiles: Sequence[float]) -> np.ndarray:
  """[N, S] pinball loss of quantile forecasts, averaged over the Q levels.

  Per level tau: tau * (y - q) when y >= q, else (1 - tau) * (q - y), in the series' units.

  Args:
    q_NSQ: [N, S, Q] (any leading shape) quantiles at `quantiles`.
    y_NS: [N, S] targets (the leading shape of q_NSQ).
    quantiles: the Q levels.
  """
  q, y = np.asarray(q_NSQ, np.float64), np.asarray(y_NS, np.float64)
  tau = np.asarray(quantiles, np.float64)
  if q.shape != y.shape + tau.shape:
    raise ValueError(f'quantiles of shape {q.shape} scored against targets of shape {y.shape} at '
                     f'{tau.size} levels')
  error = y[..., None] - q
  return np.mean(np.maximum(tau * error, (tau - 1.0) * error), axis=-1)


def crps_gaussian(mean, scale, y) -> np.ndarray:
  """CRPS of normal forecasts, closed form, elementwise (arrays of one shape).

  CRPS(N(mu, sigma^2), y) = sigma * (z * (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi)),
  z = (y - mu) / sigma (Gneiting et al. 2005). Same units as y; lower is better.
  """
  mean, scale, y = (np.asarray(a, np.float64) for a in (mean, scale, y))
  _same_shape('gaussian means', mean, y)
  _same_shape('gaussian scales', scale, y)
  z = (y - mean) / scale
  pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
  return scale * (z * (2.0 * special.ndtr(z) - 1.0) + 2.0 * pdf - 1.0 / math.sqrt(math.pi))


def _mean_abs_normal(mu, sigma):
  """E|X| for X ~ N(mu, sigma^2)."""
  return sigma * 2.0 * np.exp(-0.5 * (mu / sigma) ** 2) / math.sqrt(2.0 * math.pi) + \
      mu * (2.0 * special.ndtr(mu / sigma) - 1.0)


def crps_gaussian_mixture(mean_M, scale_M, y) -> np.ndarray:
  """CRPS of equal-weight mixtures of normals, closed form: E|X - y| - E|X - X'| / 2.

  Args:
    mean_M, scale_M: [M, ...] the members' normals.
    y: [...] targets.

  Returns:
    [...] CRPS; with M = 1 it equals `crps_gaussian`.
  """
  mean, scale, y = (np.asarray(a, np.float64) for a in (mean_M, scale_M, y))
  _same_shape('gaussian members', mean[0], y)
  _same_shape('gaussian members', scale, mean)
  to_target = np.mean(_mean_abs_normal(mean - y[None], scale), axis=0)
  between = np.mean(_mean_abs_normal(mean[:, None] - mean[None, :],
                                     np.sqrt(scale[:, None] ** 2 + scale[None, :] ** 2)),
                    axis=(0, 1))
  return to_target - 0.5 * between


def crps_from_quantiles(q_NSQ, y_NS, quantiles: Sequence[float]) -> np.ndarray:
  """[N, S] CRPS of quantile forecasts: the exact CRPS of the distribution they stand for.

  The distribution is `rnnjax.distributions.quantile_knots`': its CDF F runs linearly between
  the quantiles and, past the outer two, on with the nearest segment's slope down to 0 and up
  to 1. CRPS = integral of (F(x) - 1{x >= y})^2 dx, integrated exactly segment by segment (the
  integrand is a quadratic on each side of y). A distribution described by few quantiles
  scores a little worse than itself: a normal described at 0.1, 0.5 and 0.9 scores 0.7% above
  the normal's own expected CRPS (at 0.01, ..., 0.99: 0.002%).

  Args:
    q_NSQ: [N, S, Q] (any leading shape) non-decreasing quantiles at the Q >= 2 `quantiles`.
    y_NS: [N, S] targets.
  """
  y = np.asarray(y_NS, np.float64)
  x, p = distributions.quantile_knots(q_NSQ, quantiles)
  if x.shape[:-1] != y.shape:
    raise ValueError(f'quantiles of shape {np.shape(q_NSQ)} scored against targets of shape '
                     f'{y.shape}')
  a, b = x[..., :-1], x[..., 1:]
  u, v = p[:-1], p[1:]
  width = b - a
  cut = np.clip(y[..., None], a, b)                 # y inside each segment
  f_cut = u + (v - u) * (cut - a) / np.where(width > 0, width, 1.0)
  left = (cut - a) * (u * u + u * f_cut + f_cut * f_cut) / 3.0      # F^2 below y
  gu, gv = 1.0 - f_cut, 1.0 - v
  right = (b - cut) * (gu * gu + gu * gv + gv * gv) / 3.0           # (1 - F)^2 above y
  outside = np.maximum(x[..., 0] - y, 0.0) + np.maximum(y - x[..., -1], 0.0)
  return np.sum(left + right, axis=-1) + outside
