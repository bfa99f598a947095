"""Classic experiments: linear regression by SGD vs least squares (`linreg`) and the 1986 symmetry net (`symmetry`)."""
