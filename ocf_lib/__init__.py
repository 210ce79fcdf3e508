"""The shared library: OCF and fence protocols, parameters, logging, adapters."""
