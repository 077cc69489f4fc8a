"""The visual stream (the project's only torch package): models, training and feature extraction.

Its one output is a features file (:mod:`streid_lib.features`); the evaluation side never imports torch.
The configuration objects (:mod:`.config`) import no torch, so the command line can build its options from
them; :mod:`.train`, :mod:`.extract`, :mod:`.models` and :mod:`.data` import torch.
"""
