"""The index is a cache of the vault: it can be rebuilt from the store's signed manifests."""
