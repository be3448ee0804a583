"""Court export packages: the files, their signed manifest, every custody chain proven against
one signed checkpoint, a chain-of-custody report and instructions to verify it all by hand."""
