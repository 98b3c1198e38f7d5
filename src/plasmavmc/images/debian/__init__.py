"""The Debian 12 cloud image: built from Debian packages (mmdebstrap), booted by firmware or directly."""
