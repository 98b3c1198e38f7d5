"""The gRPC edge: servicers that validate, call `core`, and convert; errors mapped in `status.py`."""
