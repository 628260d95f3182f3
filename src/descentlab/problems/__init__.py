"""Problem definitions composed from the lower floors: a finite-sum landscape is a model
(:mod:`descentlab.models`) trained on a data set (:mod:`descentlab.data`) in minibatches."""
