"""Things with weights: each module builds one diffusers/transformers model from its config dataclass."""
