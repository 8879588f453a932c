"""The workloads maskprop evaluates: networks, sparsity profiles and the digits CNN.

The modules themselves (today ``maskprop.sim.networks``, ``maskprop.sim.profiles``,
``maskprop.sim.digits``) move here in a later step; for now this package holds their data, shipped
as package data and read through :mod:`importlib.resources`
(``importlib.resources.files("maskprop.workloads") / "data" / ...``):

- ``data/digits_cnn.npz`` (+ ``.json``): the digits-CNN fixture, real ReLU masks and tensors of one
  training step, written by ``scripts/make_digits_fixture.py``;
- ``data/profiles/<network>_literature.json``: the literature sparsity profiles.
"""
