"""perfplat's shared core: settings, names, pure window and validation maths, storage, the CLI."""
