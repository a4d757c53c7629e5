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
  lower_NS, upper_NS, y_NS = (np.asarray(a, np.float64) for a in (lower_NS, upper_NS, y_NS))
  _same_shape('interval bounds', lower_NS, y_NS)
  _same_shape('interval bounds', upper_NS, y_NS)
  if not 0.0 < level < 1.0:
    raise ValueError(f'interval level must lie strictly between 0 and 1, got {level}')
  alpha = 1.0 - level
  miss_NS = np.maximum(lower_NS - y_NS, 0.0) + np.maximum(y_NS - upper_NS, 0.0)
  return {'coverage': float(np.mean((lower_NS <= y_NS) & (y_NS <= upper_NS))),
          'width': float(np.mean(upper_NS - lower_NS)),
          'interval_score': float(np.mean(upper_NS - lower_NS + 2.0 / alpha * miss_NS))}


def pinball(q_NSQ, y_NS, quantiles: Sequence[float]) -> np.ndarray:
  """[N, S] pinball loss of quantile forecasts, averaged over the Q levels.

  Per level tau: tau * (y - q) when y >= q, else (1 - tau) * (q - y), in the series' units.

  Args:
    q_NSQ: [N, S, Q] (any leading shape) quantiles at `quantiles`.
    y_NS: [N, S] targets (the leading shape of q_NSQ).
    quantiles: the Q levels.
  """
  q_NSQ, y_NS = np.asarray(q_NSQ, np.float64), np.asarray(y_NS, np.float64)
  tau_Q = np.asarray(quantiles, np.float64)
  if q_NSQ.shape != y_NS.shape + tau_Q.shape:
    raise ValueError(f'quantiles of shape {q_NSQ.shape} scored against targets of shape '
                     f'{y_NS.shape} at {tau_Q.size} levels')
  error_NSQ = y_NS[..., None] - q_NSQ
  return np.mean(np.maximum(tau_Q * error_NSQ, (tau_Q - 1.0) * error_NSQ), axis=-1)


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
  mean_M, scale_M, y = (np.asarray(a, np.float64) for a in (mean_M, scale_M, y))
  _same_shape('gaussian members', mean_M[0], y)
  _same_shape('gaussian members', scale_M, mean_M)
  to_target = np.mean(_mean_abs_normal(mean_M - y[None], scale_M), axis=0)
  between = np.mean(_mean_abs_normal(mean_M[:, None] - mean_M[None, :],
                                     np.sqrt(scale_M[:, None] ** 2 + scale_M[None, :] ** 2)),
                    axis=(0, 1))
  return to_target - 0.5 * between


def crps_from_quantiles(q_NSQ, y_NS, quantiles: Sequence[float]) -> np.ndarray:
  """[N, S] CRPS of quantile forecasts: the exact CRPS of the distribution they stand for.

  The distribution is `rnnjax.distributions.quantile_knots`': its CDF F runs linearly between
  the quantiles and, past the outer two, on with the nearest segment's slope down to 0 and up
  to 1. CRPS = integral of (F(x) - 1{x >= y})^2 dx, integrated exactly segment by segment (the
  integrand is a quadratic on each side of y). A distribution described by few quantiles
  scores a little worse than itself (by how much: docs/distributions.md).

  Args:
    q_NSQ: [N, S, Q] (any leading shape) non-decreasing quantiles at the Q >= 2 `quantiles`.
    y_NS: [N, S] targets.
  """
  y_NS = np.asarray(y_NS, np.float64)
  x_NSJ, p_J = distributions.quantile_knots(q_NSQ, quantiles)
  if x_NSJ.shape[:-1] != y_NS.shape:
    raise ValueError(f'quantiles of shape {np.shape(q_NSQ)} scored against targets of shape '
                     f'{y_NS.shape}')
  # Segment j runs from knot j to knot j + 1: positions lo..hi, CDF values u..v.
  lo_NSJ, hi_NSJ = x_NSJ[..., :-1], x_NSJ[..., 1:]
  u_J, v_J = p_J[:-1], p_J[1:]
  width_NSJ = hi_NSJ - lo_NSJ
  cut_NSJ = np.clip(y_NS[..., None], lo_NSJ, hi_NSJ)  # y inside each segment
  f_cut_NSJ = u_J + (v_J - u_J) * (cut_NSJ - lo_NSJ) / np.where(width_NSJ > 0, width_NSJ, 1.0)
  # F^2 below y, then (1 - F)^2 above it.
  left_NSJ = (cut_NSJ - lo_NSJ) * (u_J * u_J + u_J * f_cut_NSJ + f_cut_NSJ * f_cut_NSJ) / 3.0
  gu_NSJ, gv_J = 1.0 - f_cut_NSJ, 1.0 - v_J
  right_NSJ = (hi_NSJ - cut_NSJ) * (gu_NSJ * gu_NSJ + gu_NSJ * gv_J + gv_J * gv_J) / 3.0
  outside_NS = np.maximum(x_NSJ[..., 0] - y_NS, 0.0) + np.maximum(y_NS - x_NSJ[..., -1], 0.0)
  return np.sum(left_NSJ + right_NSJ, axis=-1) + outside_NS
