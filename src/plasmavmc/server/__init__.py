"""The control-plane process: `plasmavmc-server`."""
