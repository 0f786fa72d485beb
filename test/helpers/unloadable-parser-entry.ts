/** A message parser thread that cannot load (a missing module, say): it fails before it is ready. */
throw new Error('the parser could not be loaded');
