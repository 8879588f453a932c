"""Training networks with their convolutions on the core: :mod:`.digits`, the digits CNN."""
