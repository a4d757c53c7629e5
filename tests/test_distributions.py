"""Mixtures of members' distributions against a brute-force NumPy mixture CDF on a fine grid."""
import math

import numpy as np
import pytest

from rnnjax import distributions

LEVELS = (0.1, 0.5, 0.9)
WANTED = (0.05, 0.1, 0.33, 0.5, 0.8, 0.9, 0.97)


def _grid_inverse(cdf_values, grid, levels):
  """The smallest grid point whose CDF reaches each level (the quantile function's definition,
  which picks the lowest point of a flat stretch of the CDF)."""
  return grid[np.minimum(np.searchsorted(cdf_values, levels), len(grid) - 1)]


def test_mixture_of_quantile_members_inverts_the_brute_force_mixture_cdf():
  rng = np.random.RandomState(0)
  members, windows = 4, 30
  centre = rng.normal(size=(members, windows, 1, 1)) * 2  # members that overlap and that do not
  q = np.sort(centre + rng.gamma(1.0, 1.0, size=(members, windows, 1, 3)) * [-1, 0, 1], axis=-1)
  got = distributions.quantiles_at(q, 'quantile', LEVELS, WANTED)
  assert got.shape == (windows, 1, len(WANTED))
  worst = 0.0
  for n in range(windows):
    grid = np.linspace(q[:, n].min() - 5, q[:, n].max() + 5, 200_001)
    # Each member's CDF through its knots: (first quantile - 0.1 / slope, 0), (q, tau), ...
    cdf = np.zeros_like(grid)
    for m in range(members):
      lo, mid, hi = q[m, n, 0]
      knots = [lo - 0.1 * (mid - lo) / 0.4, lo, mid, hi, hi + 0.1 * (hi - mid) / 0.4]
      cdf += np.interp(grid, knots, [0, 0.1, 0.5, 0.9, 1]) / members
    want = _grid_inverse(cdf, grid, WANTED)
    step = grid[1] - grid[0]
    worst = max(worst, np.max(np.abs(want - got[n, 0])) / step)
  assert worst <= 2, f'mixture quantiles off the brute-force ones by {worst} grid steps'


def test_mixture_of_normals_inverts_the_brute_force_mixture_cdf():
  rng = np.random.RandomState(1)
  mean = rng.normal(size=(3, 20, 2)) * 3
  scale = rng.uniform(0.2, 2.0, size=(3, 20, 2))
  got = distributions.quantiles_at(np.stack([mean, scale], -1), 'gaussian', LEVELS, WANTED)
  erf = np.vectorize(math.erf)
  grid = np.linspace(-25, 25, 50_001)
  for n in range(0, 20, 7):
    for s in range(2):
      cdf = np.mean([0.5 * (1 + erf((grid - mean[m, n, s]) / (scale[m, n, s] * math.sqrt(2))))
                     for m in range(3)], axis=0)
      np.testing.assert_allclose(got[n, s], _grid_inverse(cdf, grid, WANTED),
                                 atol=2 * (grid[1] - grid[0]),
                                 err_msg=f'window {n}, step {s}: normal mixture quantiles')


def test_one_member_keeps_its_own_quantiles_and_interpolates_between_them():
  q = np.array([[[[1.0, 2.0, 4.0]]]])  # [M=1, N=1, S=1, Q=3]
  np.testing.assert_array_equal(distributions.quantiles_at(q, 'quantile', LEVELS, LEVELS), q[0])
  # Halfway in level between 0.5 and 0.9 is halfway between 2 and 4; 0.05 is half the tail
  # below 1, which falls at slope 0.4 per unit: 1 - 0.05 / 0.4.
  np.testing.assert_allclose(
      distributions.quantiles_at(q, 'quantile', LEVELS, (0.7, 0.05))[0, 0], [3.0, 0.875])
  normal = np.array([[[[3.0, 2.0]]]])
  np.testing.assert_allclose(distributions.quantiles_at(normal, 'gaussian', (), (0.5, 0.9)),
                             [[[3.0, 3.0 + 2.0 * 1.2815515655446004]]], rtol=1e-12)


def test_identical_members_mix_to_themselves():
  q = np.sort(np.random.RandomState(2).normal(size=(1, 10, 3, 3)), axis=-1)
  np.testing.assert_allclose(
      distributions.quantiles_at(np.repeat(q, 3, axis=0), 'quantile', LEVELS, LEVELS), q[0],
      atol=1e-12)
  g = np.stack([np.arange(6.0).reshape(1, 2, 3), np.full((1, 2, 3), 0.5)], -1)
  np.testing.assert_allclose(
      distributions.quantiles_at(np.repeat(g, 4, axis=0), 'gaussian', (), LEVELS),
      distributions.gaussian_quantiles(g[0, ..., 0], g[0, ..., 1], LEVELS), atol=1e-9)


def test_mixture_moments_and_centres():
  mean = np.array([[1.0], [3.0]])
  scale = np.array([[1.0], [2.0]])
  m, s = distributions.gaussian_mixture_moments(mean, scale)
  # variance: mean of the variances (2.5) plus the variance of the means (1).
  np.testing.assert_allclose(m, [2.0])
  np.testing.assert_allclose(s, [math.sqrt(3.5)])
  g = np.stack([mean, scale], -1)
  np.testing.assert_allclose(distributions.center(g, 'gaussian'), [2.0])
  q = np.array([[[0.0, 1.0, 2.0]], [[0.0, 1.0, 2.0]]])
  np.testing.assert_allclose(distributions.center(q, 'quantile', LEVELS), [1.0])
  assert distributions.middle_index((0.05, 0.4, 0.7, 0.95)) == 1


def test_bad_inputs_are_refused():
  with pytest.raises(ValueError, match='strictly between 0 and 1'):
    distributions.quantiles_at(np.zeros((1, 2, 3)), 'quantile', LEVELS, (0.0,))
  with pytest.raises(ValueError, match='one quantile per level'):
    distributions.quantile_knots(np.zeros((2, 4)), LEVELS)
  with pytest.raises(ValueError, match='size 2'):
    distributions.quantiles_at(np.zeros((1, 2, 3)), 'gaussian', LEVELS, (0.5,))
