"""Tests of ``fitwire.datasets``: CSV and image-zip inspection on generated files."""
