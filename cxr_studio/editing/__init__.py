"""Pure pixel and mask operations (no models): the mask convention, feathering, cropping, paste-back."""
