"""Commands: thin click wrappers. Arguments in, one core call, the renderer out."""
