"""Training dynamics made visible: optimizers on 2-D loss surfaces (landscape), a learning-rate
sweep of the real model (lrsweep), one step in numbers (onestep), temperature (temperature) and
what training costs (estimate). The commands are in commands.py."""
