"""The ``ipqa`` command: the top of the stack. It imports assistant/, ui/, eval/ and index/;
nothing imports it."""
