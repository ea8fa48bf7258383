"""aetools: convolutional autoencoders with skip connections that do jobs on images."""

__version__ = "0.1.0"
