"""Learning: metrics, the gate, training, evaluation of versions, explanations over many rows."""
