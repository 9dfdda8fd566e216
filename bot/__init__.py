"""btsbot: the autonomous scanner of the ZTF Bright Transient Survey."""

__version__ = "0.1.0"
