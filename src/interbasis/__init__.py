"""interbasis: Local Interaction Basis vs PCA vs neuron bases."""
