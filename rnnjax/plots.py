"""The tutorial's figures: the loss per epoch, and real vs predicted values in original units."""
from __future__ import annotations

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402


def plot_loss(history: dict, path: str) -> None:
  """loss and val_loss (scaled MSE) per epoch; `history` holds [E] arrays (or [M, E] members)."""
  fig, ax = plt.subplots(figsize=(6, 4))
  for key, label in (('loss', 'Loss'), ('val_loss', 'Val loss')):
    curve = np.atleast_2d(np.asarray(history[key], np.float64))
    epochs = np.arange(1, curve.shape[1] + 1)
    mean = np.nanmean(curve, axis=0)
    line, = ax.plot(epochs, mean, label=f'{label}: {mean[-1]:.4f}')
    if curve.shape[0] > 1:
      ax.fill_between(epochs, np.nanmin(curve, 0), np.nanmax(curve, 0), alpha=0.2,
                      color=line.get_color())
  ax.set(title='Loss per epoch', xlabel='Epoch', ylabel='MSE (scaled)')
  ax.legend()
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def plot_predictions(panels: dict, path: str, last: int = 500) -> None:
  """Four panels: all training and validation windows, then the last `last` of each.

  Args:
    panels: {'train': (real [N], pred [N], band or None), 'val': (...)}; a band is
      (low [N], high [N]) in original units, drawn for ensembles.
    path: PNG to write.
    last: points in the zoomed panels.
  """
  fig, axes = plt.subplots(4, 1, figsize=(20, 25))
  specs = [('train', 'All training', None), ('val', 'All validation', None),
           ('train', 'Last training', last), ('val', 'Last validation', last)]
  for ax, (part, title, tail) in zip(axes, specs, strict=True):
    real, pred, band = panels[part]
    x = np.arange(len(real))
    if tail:
      x, real, pred = x[-tail:], real[-tail:], pred[-tail:]
      band = None if band is None else (band[0][-tail:], band[1][-tail:])
    ax.plot(x, real, label='Real')
    ax.plot(x, pred, label='Predicted')
    if band is not None:
      ax.fill_between(x, band[0], band[1], alpha=0.3, color='C1', label='Ensemble band')
    ax.set(title=title, xlabel='Window', ylabel='Value (original units)')
    ax.set_xlim(x[0], x[-1])
    ax.legend()
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
