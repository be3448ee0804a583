"""The custody log: Merkle tree, checkpoints, storage, sequencer and its HTTP side."""
