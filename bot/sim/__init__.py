"""Local stand-ins of Kowalski and SkyPortal, for tests and demos. They bind to loopback by default."""
