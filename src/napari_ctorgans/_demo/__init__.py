"""The pieces of ``ctorgans demo`` that need no GUI: the real-CT run, the phantom training run, the picture."""
