"""Tests of model specs: ``fitwire.contract.spec_shapes`` against Keras, and ``fitwire.agent.spec_model``."""
