"""Training entry points for every stage of the CXR Studio cascade. Consumes the ``cxr_studio`` library."""
