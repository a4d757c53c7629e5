"""rnnjax: recurrent time-series forecasting in JAX/Flax. See README.md."""
