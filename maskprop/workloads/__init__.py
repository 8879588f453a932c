"""The workloads maskprop evaluates: the five networks (:mod:`.networks`), sparsity profiles
(:mod:`.profiles`) and the digits CNN with its training (:mod:`.digits`).

Their data ships as package data, read through :mod:`importlib.resources`
(``importlib.resources.files("maskprop.workloads") / "data" / ...``):

- ``data/digits_cnn.npz`` (+ ``.json``): the digits-CNN fixture, real ReLU masks and tensors of one
  training step, written by ``scripts/make_digits_fixture.py``;
- ``data/profiles/<network>_literature.json``: the literature sparsity profiles.
"""
