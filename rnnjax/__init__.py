"""rnnjax: recurrent time-series forecasting in JAX/Flax. See README.md.

Array names end in their shape, one letter per axis (`x_BWF` is [batch, window, features]);
a name changes its suffix when its layout changes (`h_WBH` inside a time-major scan):

    B batch (windows of one minibatch)     N windows (any number, e.g. every validation one)
    W time steps within a window           T time steps of a whole series
    F input columns (target first; the model's include lag and calendar columns)
    K known-future inputs at the target times
    S target steps (outputs per window)    Q quantile levels
    H hidden units of a layer              G gate pre-activations (gates x H)
    M members (seeds, sweeps, folds)       D devices
    L points where a distribution is read  J knots of a piecewise-linear CDF
    I the inputs or outputs of a Dense layer, flattened (e.g. H + S * K before the head)
    C spread outputs per step of a probabilistic head (Q - 1 quantile gaps, or 1 scale)
    P lags (data.lags), one column each     E epochs
    R series of a panel (data.id_column)  O folds of a backtest (one origin each)
"""
